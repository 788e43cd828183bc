//! Serving a simulator on 127.0.0.1:0: a listener whose connections a fault can kill, the
//! fault middleware, and the request log, whose every entry is a tick of the world's clock.

use crate::faults::FaultAction;
use crate::shared::Shared;
use crate::world::Event;
use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request a simulator served, for tests and the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    pub vendor: &'static str,
    pub method: String,
    pub path: String,
    /// `None` when a fault dropped or stalled the request.
    pub status: Option<u16>,
    pub fault: Option<&'static str>,
    /// When it arrived and when its answer left, in microseconds since the process's first
    /// request: the benches read the run's critical path (its chain of dependent calls)
    /// from these.
    pub start_us: u64,
    pub end_us: u64,
}

/// Microseconds since the first time this was asked in this process.
fn micros() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

/// A TCP listener whose connections carry a kill switch.
struct KillableListener(TcpListener);

/// A connection that errors on its next write once killed (a `drop` fault).
struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

/// The kill switch of the connection a request arrived on.
#[derive(Clone)]
struct KillSwitch(Arc<AtomicBool>);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    let io = KillableStream {
                        inner,
                        killed: Arc::new(AtomicBool::new(false)),
                    };
                    return (io, addr);
                }
                // Out of file descriptors and the like: back off briefly, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        KillSwitch(stream.io().killed.clone())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A vendor's error answer for a status, asking for a wait of so many seconds when given.
pub(crate) type ErrorAnswer = Arc<dyn Fn(u16, Option<u64>) -> Response + Send + Sync>;

/// `error_for_status`'s answer to `status`, asking for a wait of `wait` seconds with a
/// `Retry-After` header (as most vendors do).
pub(crate) fn error_answer(
    error_for_status: fn(u16) -> Response,
    status: u16,
    wait: Option<u64>,
) -> Response {
    let resp = error_for_status(status);
    match wait {
        Some(secs) => with_retry_after(resp, secs),
        None => resp,
    }
}

/// `resp` with a `Retry-After` of `secs`.
pub(crate) fn with_retry_after(mut resp: Response, secs: u64) -> Response {
    resp.headers_mut()
        .insert("retry-after", HeaderValue::from(secs));
    resp
}

/// Which simulator a middleware runs in front of.
#[derive(Clone)]
struct Mw {
    shared: Arc<Shared>,
    vendor: &'static str,
    error: ErrorAnswer,
}

/// Marks a response whose request a fault handled (for the request log).
#[derive(Clone)]
struct FaultMark(&'static str);

/// `resp`, marked as the answer of fault `kind`.
fn marked(mut resp: Response, kind: &'static str) -> Response {
    resp.extensions_mut().insert(FaultMark(kind));
    resp
}

/// Binds 127.0.0.1:0 and serves `router` behind the fault and logging middleware.
pub(crate) async fn serve(
    vendor: &'static str,
    router: Router,
    error: ErrorAnswer,
    shared: Arc<Shared>,
    outer: impl FnOnce(Router) -> Router,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let mw = Mw {
        shared: shared.clone(),
        vendor,
        error,
    };
    let app = outer(router.layer(middleware::from_fn_with_state(mw.clone(), faults)))
        .layer(middleware::from_fn_with_state(mw, log));
    let mut stop = shared.stop.clone();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<KillSwitch>();
        let _ = axum::serve(KillableListener(listener), service)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok((addr, task))
}

/// The sandbox's own control routes: automation standing in for a person at the vendor's
/// dashboard, not vendor API traffic, so faults and the request log leave them alone.
pub(crate) fn is_control(path: &str) -> bool {
    path.starts_with("/_sandbox/")
}

/// Requests a vendor's API rate limit does not count: the control routes and the web
/// dashboard a person uses (a rate-limited API does not lock its owner out of the dashboard).
pub(crate) fn is_unmetered(path: &str) -> bool {
    is_control(path) || path == "/dashboard" || path.starts_with("/dashboard/")
}

async fn faults(State(mw): State<Mw>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if is_control(&path) {
        return next.run(req).await;
    }
    let Some((action, retry_after)) = mw.shared.faults.take(mw.vendor, &method, &path) else {
        return next.run(req).await;
    };
    match action {
        FaultAction::Latency(ms) => {
            latency(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        FaultAction::Status(status) => marked((mw.error)(status, retry_after), "status"),
        FaultAction::Malformed => {
            let truncated = (
                StatusCode::OK,
                [("content-type", "application/json; charset=utf-8")],
                "{\"ErrorCode\": 0, \"Message\": \"OK\", \"trunc",
            );
            marked(truncated.into_response(), "malformed")
        }
        FaultAction::Drop => {
            if let Some(ConnectInfo(KillSwitch(k))) =
                req.extensions().get::<ConnectInfo<KillSwitch>>()
            {
                k.store(true, Ordering::SeqCst);
            }
            marked(Response::new(Body::empty()), "drop")
        }
        FaultAction::Lost => {
            let kill = req
                .extensions()
                .get::<ConnectInfo<KillSwitch>>()
                .map(|ConnectInfo(KillSwitch(k))| k.clone());
            // The vendor does the work; only the answer is lost on the way back.
            let _served = next.run(req).await;
            if let Some(k) = kill {
                k.store(true, Ordering::SeqCst);
            }
            marked(Response::new(Body::empty()), "lost")
        }
        FaultAction::Committed(status) => {
            // The vendor applies the write; the answer the client gets is its 5xx.
            let _served = next.run(req).await;
            marked((mw.error)(status, retry_after), "committed")
        }
        FaultAction::Stall => {
            let mut stop = mw.shared.stop.clone();
            let _ = stop.wait_for(|s| *s).await;
            marked(StatusCode::SERVICE_UNAVAILABLE.into_response(), "stall")
        }
    }
}

/// Waits `d`, to within tens of microseconds. tokio's timer rounds a sleep up to its next
/// millisecond tick and wakes after it, so `latency=20` took 20.5 to 22 ms: 7% more than it
/// says, on every call of both sides of a bench. The last 2 ms are waited on a blocking
/// thread: a nanosleep there still woke 0.15-0.2 ms late (timer slack, a CPU woken from
/// idle), so its last 150 µs are spun. 20.23 ms became 20.08 at 20 ms, as the request log
/// times it (docs/performance.md).
async fn latency(d: Duration) {
    const SPUN: Duration = Duration::from_micros(150);
    let deadline = std::time::Instant::now() + d;
    if let Some(coarse) = d.checked_sub(Duration::from_millis(2)) {
        tokio::time::sleep(coarse).await;
    }
    let rest = deadline.saturating_duration_since(std::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(slept) = rest.checked_sub(SPUN) {
                std::thread::sleep(slept);
            }
            while std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
        })
        .await;
    }
}

/// Every answer says it comes from a simulator (`x-runbook-simulator: NAME`), so a run that
/// reaches one knows it is a rehearsal, whatever its endpoints looked like.
pub(crate) const SIMULATOR_HEADER: &str = "x-runbook-simulator";

async fn log(State(mw): State<Mw>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if is_control(&path) {
        return next.run(req).await;
    }
    let start_us = micros();
    let mut resp = next.run(req).await;
    let end_us = micros();
    resp.headers_mut().insert(
        SIMULATOR_HEADER,
        axum::http::HeaderValue::from_static(mw.vendor),
    );
    let fault = resp.extensions().get::<FaultMark>().map(|m| m.0);
    let status = match fault {
        Some("drop") | Some("stall") | Some("lost") => None,
        _ => Some(resp.status().as_u16()),
    };
    mw.shared.with_world(|w| {
        w.requests.push(RequestRecord {
            vendor: mw.vendor,
            method,
            path,
            status,
            fault,
            start_us,
            end_us,
        });
        // Production traffic keeps flowing while the runbook works.
        w.emit(&Event::Tick {
            faults: &mw.shared.faults,
        });
    });
    mw.shared.activity.notify_waiters();
    resp
}

/// Reads a header as text.
pub(crate) fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request body as JSON; an empty body is `{}`, as the vendors read a write sent without one.
pub(crate) fn json_or_empty(body: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    if body.is_empty() {
        Ok(serde_json::json!({}))
    } else {
        serde_json::from_slice(body)
    }
}

/// `body` as a JSON answer with `status`; a number that is no HTTP status answers 500.
pub(crate) fn json_answer(status: u16, body: serde_json::Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}
