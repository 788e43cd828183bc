//! Heroku Platform API client: config vars, restarts, releases, log sessions.

use super::error::{ErrorKind, VendorCode, VendorError};
use super::transport::{
    decode_json, endpoint, ErrorDetail, HeaderValueSource, RawResponse, Request, Transport,
};
use reqwest::Method;
use runbook_secret::Secret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

const VENDOR: &str = crate::Vendor::Heroku.name();
const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// A config var value to set: plain text or a secret (exposed only in the request body).
#[derive(Debug, Clone)]
pub enum ConfigValue {
    Plain(String),
    Secret(Secret),
}

impl ConfigValue {
    /// The value as the request sends it: an opaque one (read back by `heroku::config`,
    /// neither clearly a setting nor clearly a credential) joins the redactor now, as
    /// `http::` does, so an answer that quotes what it was sent comes back masked.
    fn expose(&self) -> &str {
        match self {
            ConfigValue::Plain(s) => s,
            ConfigValue::Secret(s) => s.expose_to_send(),
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::Plain(v.to_string())
    }
}

impl From<&Secret> for ConfigValue {
    fn from(v: &Secret) -> Self {
        ConfigValue::Secret(v.clone())
    }
}

/// An app's config vars. Values may be credentials, so `Debug` prints only the names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigVars(BTreeMap<String, String>);

impl ConfigVars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The names of the vars whose value has fingerprint `fp` (keyed; compared here, so no
    /// value leaves).
    pub fn holding<'a>(&'a self, fp: &'a str) -> impl Iterator<Item = String> + 'a {
        self.0
            .iter()
            .filter(move |(_, v)| runbook_secret::fingerprint_matches(v, fp))
            .map(|(k, _)| k.clone())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw map; the caller takes over the duty not to print it.
    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }

    /// Iterates over `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A dyno (`GET /apps/{app}/dynos`), the fields we use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Dyno {
    pub name: String,
    /// `starting`, `up`, `crashed`, `down`, `idle`...
    pub state: String,
    /// The release it runs.
    #[serde(default)]
    pub release: Option<DynoRelease>,
    /// Its process type (`web`, `worker`; `run` for a one-off, `scheduler`, `release`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// When its state last changed (RFC 3339, Heroku's clock): for a dyno `up`, about when
    /// it came up.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// One process type of an app's formation (`GET /apps/{app}/formation`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Formation {
    #[serde(rename = "type")]
    pub kind: String,
    /// How many dynos of the type run.
    pub quantity: u64,
}

/// An app's dynos and the time Heroku answered (its `Date` header), so an age on Heroku's
/// clock is measured without trusting this machine's.
#[derive(Debug, Clone)]
pub struct Dynos {
    pub list: Vec<Dyno>,
    pub answered_at: Option<time::OffsetDateTime>,
}

/// A dyno's `release`: the fields we use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DynoRelease {
    #[serde(default)]
    pub version: Option<u64>,
}

/// A release (`GET /apps/{app}/releases`), the fields we use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Release {
    pub id: String,
    pub version: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub current: bool,
    #[serde(default)]
    pub user: Option<ReleaseUser>,
}

/// Who made a release.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ReleaseUser {
    #[serde(default)]
    pub email: String,
}

/// Client for the Heroku Platform API.
#[derive(Debug, Clone)]
pub struct HerokuClient {
    transport: Transport,
    base: String,
    api_key: Option<Secret>,
    /// Each app's generation (`cedar`, `fir`) as the app list or the app said it: a log
    /// read needs it, and a run that listed the apps need not ask again.
    generations: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

/// An app's generation, as `GET /apps` and `GET /apps/{app}` answer it.
#[derive(Deserialize)]
struct Generation {
    name: String,
}

impl HerokuClient {
    pub fn new(transport: Transport, base: impl Into<String>, api_key: Option<Secret>) -> Self {
        HerokuClient {
            transport,
            base: base.into().trim_end_matches('/').to_string(),
            api_key,
            generations: Default::default(),
        }
    }

    fn remember_generation(&self, app: &str, generation: Option<Generation>) {
        if let (Some(g), Ok(mut known)) = (generation, self.generations.lock()) {
            known.insert(app.to_string(), g.name);
        }
    }

    /// Whether `app` is a Fir app: from what the run already learned, else `GET /apps/{app}`.
    async fn is_fir(&self, app: &str) -> Result<bool, VendorError> {
        #[derive(Deserialize)]
        struct AppInfo {
            generation: Option<Generation>,
        }
        let known = self
            .generations
            .lock()
            .ok()
            .and_then(|k| k.get(app).cloned());
        if let Some(g) = known {
            return Ok(g == "fir");
        }
        let req = self.request(Method::GET, &["apps", app])?;
        let info: AppInfo = self.transport.send_json(req, parse_error).await?;
        let fir = info.generation.as_ref().is_some_and(|g| g.name == "fir");
        self.remember_generation(app, info.generation);
        Ok(fir)
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<Request, VendorError> {
        let key = self.api_key.as_ref().ok_or_else(|| {
            VendorError::config(
                VENDOR,
                "no API key: HEROKU_API_KEY is not set",
                "set HEROKU_API_KEY (e.g. from `heroku auth:token`), or heroku_api_key in runbook.toml [vendors]",
            )
        })?;
        let url = endpoint(
            VENDOR,
            &self.base,
            "HEROKU_HOST",
            "set HEROKU_HOST to a host name or a full http(s) URL",
            segments,
        )?;
        let route = format!("/{}", segments.join("/"));
        Ok(Request::new(VENDOR, method, url.to_string())
            .route(route)
            .header("Accept", ACCEPT)
            .header("Authorization", HeaderValueSource::Bearer(key.clone())))
    }

    /// Sends `req` and reads the config-var map it answers (a `null` value is no var).
    async fn send_config_vars(&self, req: Request) -> Result<ConfigVars, VendorError> {
        let map: BTreeMap<String, Option<String>> =
            self.transport.send_json(req, parse_error).await?;
        Ok(ConfigVars(
            map.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
        ))
    }

    /// Every page of a ranged list: the first asked with `range` (none: Heroku's own
    /// default), then each `Next-Range` while Heroku answers 206, `most_pages` at most.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        mut range: Option<String>,
        most_pages: usize,
    ) -> Result<Vec<T>, VendorError> {
        let mut out = Vec::new();
        // A listing cut short is an error, not a clean partial list: discovery would miss
        // the apps past it, and the old value be revoked under them.
        let incomplete = |req: &Request, why: String| {
            req.error(
                ErrorKind::InvalidResponse,
                format!("the listing is incomplete: {why}"),
            )
            .with_hint("nothing past it was read; try again, or ask Heroku support if it persists")
        };
        let too_long = |req: &Request| {
            let hint = if segments.last() == Some(&"releases") {
                "ask for the newest releases only: heroku::releases(app, #{ newest: N })"
            } else {
                "name the apps the runbook covers instead of listing every app the key sees"
            };
            req.error(
                ErrorKind::InvalidResponse,
                format!("the listing is longer than runbook reads ({most_pages} pages)"),
            )
            .with_hint(hint)
        };
        for page_no in 0..most_pages {
            let mut req = self.request(Method::GET, segments)?;
            if let Some(r) = &range {
                req = req.header("Range", r.clone());
            }
            let resp = self
                .transport
                .send_checked(req.clone(), parse_error)
                .await?;
            let page: Vec<T> = decode_json(&req, &resp)?;
            out.extend(page);
            match (resp.status, resp.header("Next-Range")) {
                (206, Some(next)) if range.as_deref() == Some(next) => {
                    return Err(incomplete(
                        &req,
                        "Heroku gave the same Next-Range again".into(),
                    ));
                }
                (206, Some(_)) if page_no + 1 == most_pages => return Err(too_long(&req)),
                (206, Some(next)) => range = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// `GET /apps/{app}/config-vars`.
    pub async fn config_vars(&self, app: &str) -> Result<ConfigVars, VendorError> {
        let req = self.request(Method::GET, &["apps", app, "config-vars"])?;
        self.send_config_vars(req).await
    }

    /// `PATCH /apps/{app}/config-vars`: sets the given vars, `None` deletes; returns the full map.
    /// Heroku makes a new release and restarts the app.
    pub async fn update_config_vars(
        &self,
        app: &str,
        changes: &BTreeMap<String, Option<ConfigValue>>,
    ) -> Result<ConfigVars, VendorError> {
        let body: serde_json::Map<String, serde_json::Value> = changes
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Some(v) => serde_json::Value::String(v.expose().to_string()),
                    None => serde_json::Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        // The same PATCH twice leaves the same config; safe to retry.
        let req = self
            .request(Method::PATCH, &["apps", app, "config-vars"])?
            .header("Content-Type", "application/json")
            .json(serde_json::Value::Object(body))
            .idempotent(true);
        self.send_config_vars(req).await
    }

    /// `DELETE /apps/{app}/dynos`: restarts every dyno (any 2xx is success).
    pub async fn restart_all(&self, app: &str) -> Result<(), VendorError> {
        let req = self.request(Method::DELETE, &["apps", app, "dynos"])?;
        self.transport.send_checked(req, parse_error).await?;
        Ok(())
    }

    /// `GET /apps/{app}/dynos`: each dyno and its state, and when Heroku answered.
    pub async fn dynos(&self, app: &str) -> Result<Dynos, VendorError> {
        let req = self.request(Method::GET, &["apps", app, "dynos"])?;
        let resp = self
            .transport
            .send_checked(req.clone(), parse_error)
            .await?;
        let answered_at = resp
            .headers
            .get("date")
            .and_then(|d| d.to_str().ok())
            .and_then(http_date);
        Ok(Dynos {
            list: crate::transport::decode_json(&req, &resp)?,
            answered_at,
        })
    }

    /// `GET /apps/{app}/formation`: how many dynos of each process type the app runs.
    pub async fn formation(&self, app: &str) -> Result<Vec<Formation>, VendorError> {
        let req = self.request(Method::GET, &["apps", app, "formation"])?;
        self.transport.send_json(req, parse_error).await
    }

    /// `GET /apps/{app}/features/preboot`: whether preboot is on, when the old web dynos keep
    /// the traffic (and their config) for minutes after a change. An app without the feature
    /// (404: Heroku has no such feature for it) has no preboot.
    pub async fn preboot(&self, app: &str) -> Result<bool, VendorError> {
        #[derive(Deserialize)]
        struct Feature {
            enabled: bool,
        }
        let req = self.request(Method::GET, &["apps", app, "features", "preboot"])?;
        match self
            .transport
            .send_unless(req.clone(), parse_error, 404)
            .await?
        {
            Some(resp) => Ok(crate::transport::decode_json::<Feature>(&req, &resp)?.enabled),
            None => Ok(false),
        }
    }

    /// `GET /apps/{app}/releases`, following `Next-Range` pages; oldest first.
    pub async fn releases(&self, app: &str) -> Result<Vec<Release>, VendorError> {
        let mut out: Vec<Release> = self.all_pages(&["apps", app, "releases"], None, 50).await?;
        out.sort_by_key(|r| r.version);
        Ok(out)
    }

    /// The newest release (`Range: version ..; max=1, order=desc`).
    pub async fn latest_release(&self, app: &str) -> Result<Option<Release>, VendorError> {
        Ok(self.newest_releases(app, 1).await?.pop())
    }

    /// The newest `n` releases (1 to 1,000: one page, `Range: version ..; max=n,
    /// order=desc`), oldest first. An app's whole history can be thousands of releases.
    pub async fn newest_releases(&self, app: &str, n: u32) -> Result<Vec<Release>, VendorError> {
        let req = self
            .request(Method::GET, &["apps", app, "releases"])?
            .header(
                "Range",
                format!("version ..; max={}, order=desc", n.clamp(1, 1000)),
            );
        let mut page: Vec<Release> = self.transport.send_json(req, parse_error).await?;
        page.sort_by_key(|r| r.version);
        let extra = page.len().saturating_sub(n as usize);
        page.drain(..extra);
        Ok(page)
    }

    /// `GET /apps`, following `Next-Range` pages (1,000 a page): every app the key can see.
    pub async fn apps(&self) -> Result<Vec<String>, VendorError> {
        #[derive(Deserialize)]
        struct App {
            name: String,
            generation: Option<Generation>,
        }
        // 100 pages of 1,000 is more apps than any account holds; the bound stops a loop.
        let apps: Vec<App> = self
            .all_pages(&["apps"], Some("name ..; max=1000".to_string()), 100)
            .await?;
        Ok(apps
            .into_iter()
            .map(|a| {
                self.remember_generation(&a.name, a.generation);
                a.name
            })
            .collect())
    }

    /// The key's OAuth scopes: the `scope` of the authorization whose token is this key, from
    /// `GET /oauth/authorizations`. `None` when Heroku does not list them for this key (a
    /// scoped token may not list authorizations; the account API key, `global`, may).
    pub async fn scopes(&self) -> Result<Option<Vec<String>>, VendorError> {
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
        }
        #[derive(Deserialize)]
        struct Authorization {
            access_token: Option<Token>,
            #[serde(default)]
            scope: Vec<String>,
        }
        let req = self.request(Method::GET, &["oauth", "authorizations"])?;
        let Some(resp) = self
            .transport
            .send_unless(req.clone(), parse_error, 403)
            .await?
        else {
            return Ok(None);
        };
        // The list holds the user's other tokens too: only this key's entry is kept.
        let list: Vec<Authorization> = decode_json(&req, &resp)?;
        let key = self
            .api_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        Ok(list
            .into_iter()
            .find(|a| a.access_token.as_ref().and_then(|t| t.token.as_deref()) == Some(key))
            .map(|a| a.scope))
    }

    /// The last `lines` log lines: `POST /apps/{app}/log-sessions`, then a GET of its
    /// `logplex_url` (`open_log_session`, `read_log_session`).
    pub async fn log_lines(&self, app: &str, lines: u32) -> Result<Vec<String>, VendorError> {
        let session = self.open_log_session(app, lines).await?;
        self.read_log_session(&session).await
    }

    /// Opens a session for `app`'s last `lines` log lines: `POST /apps/{app}/log-sessions`.
    /// The lines are those logged when the session is read, not when it was opened, so a
    /// session can be opened before what it should show has happened. A Fir-generation
    /// app keeps no log history: its sessions only stream what is logged from then on and
    /// do not end (the CLI: `--num` ignored, `--tail` always on), so reading one for recent
    /// lines would wait until the timeout. The app's generation (from the app list the run
    /// read, else `GET /apps/{app}`) decides first, and a Fir app is refused at once,
    /// saying so.
    pub async fn open_log_session(&self, app: &str, lines: u32) -> Result<LogSession, VendorError> {
        if self.is_fir(app).await? {
            return Err(VendorError::new(
                VENDOR,
                "POST",
                format!("/apps/{app}/log-sessions"),
                ErrorKind::Validation,
                format!("{app} is a Fir app: its log sessions stream only what is logged from now on (no history), so its recent lines cannot be read"),
            )
            .with_code(Some(VendorCode::Text(NO_LOG_HISTORY.into()))));
        }
        self.create_log_session(app, lines, false).await
    }

    /// `POST /apps/{app}/log-sessions`, `tail` or not.
    async fn create_log_session(
        &self,
        app: &str,
        lines: u32,
        tail: bool,
    ) -> Result<LogSession, VendorError> {
        // Creating a session has no side effect beyond the session; safe to retry.
        let req = self
            .request(Method::POST, &["apps", app, "log-sessions"])?
            .header("Content-Type", "application/json")
            .json(serde_json::json!({"lines": lines, "tail": tail}))
            .idempotent(true);
        let session: LogplexSession = self.transport.send_json(req, parse_error).await?;
        Ok(LogSession {
            app: app.to_string(),
            lines,
            url: self.session_url(session.logplex_url, app)?,
        })
    }

    /// `heroku logs --tail`: opens a tail session for `app` (its last `lines`, then every
    /// line as it is logged) and starts reading it, returning once the stream has answered.
    /// The lines are kept as they arrive (the newest, up to the most a runbook reads) until
    /// the tail is dropped, which closes it. A stream that ends (Heroku closes a Fir app's
    /// every 15 minutes, a session after an hour; a connection breaks) is opened again,
    /// up to `TAIL_REOPENS` times, without the lines already kept. A Fir app's session has
    /// no history: it brings what is logged from the moment it opens.
    pub async fn tail_logs(&self, app: &str, lines: u32) -> Result<LogTail, VendorError> {
        let resp = self.open_tail(app, lines).await?;
        let (seen, watch) = tokio::sync::watch::channel(());
        let kept = std::sync::Arc::new(std::sync::Mutex::new(TailLines::default()));
        let reader = tokio::spawn(read_tail(
            self.clone(),
            app.to_string(),
            lines,
            resp,
            kept.clone(),
            seen,
            self.transport.config().max_body,
        ));
        Ok(LogTail {
            kept,
            watch,
            reader,
            scanned: 0,
            found: false,
        })
    }

    /// A tail session's stream, answering. The Heroku CLI's two forms: a Cedar app's session
    /// asks for `lines` and `tail`; a Fir app's asks for neither (it always tails, with no
    /// history) and is asked with the `version=3.sdk` Accept header.
    async fn open_tail(&self, app: &str, lines: u32) -> Result<reqwest::Response, VendorError> {
        let fir = self.is_fir(app).await?;
        let mut req = self
            .request(Method::POST, &["apps", app, "log-sessions"])?
            .header("Content-Type", "application/json")
            .idempotent(true);
        if fir {
            req.headers.retain(|(name, _)| name != "Accept");
            req = req.header("Accept", ACCEPT_SDK).json(serde_json::json!({}));
        } else {
            req = req.json(serde_json::json!({"lines": lines, "tail": true}));
        }
        let session: LogplexSession = self.transport.send_json(req, parse_error).await?;
        let url = self.session_url(session.logplex_url, app)?;
        // The session URL is a capability on another host: no Authorization header.
        let read = Request::new(VENDOR, Method::GET, url)
            .route(format!("logplex session of {app}"))
            .header("Accept", "text/plain");
        self.transport
            .open_stream(read, parse_error, TAIL_OPEN)
            .await
    }

    /// A log session's URL, as Heroku gave it: one on this machine is refused unless Heroku
    /// itself is here (a rehearsal). Plain HTTP is allowed to loopback, so an answer naming
    /// a local port read a local service's page (an agent, an admin port) into the script
    /// as "log lines".
    fn session_url(&self, url: String, app: &str) -> Result<String, VendorError> {
        let local =
            |u: &str| reqwest::Url::parse(u).is_ok_and(|u| crate::transport::is_loopback(&u));
        if local(&url) && !local(&self.base) {
            return Err(VendorError::new(
                VENDOR,
                "POST",
                format!("/apps/{app}/log-sessions"),
                ErrorKind::InvalidResponse,
                "Heroku's answer points the log session at this machine; not read",
            )
            .with_hint("Heroku serves log sessions from its own hosts: check HEROKU_HOST and what answers there"));
        }
        Ok(url)
    }

    /// The lines of a session `open_log_session` opened. A session unused for
    /// about five minutes expires (heroku-client's docs): one that is gone (404) is opened
    /// again, once.
    pub async fn read_log_session(&self, session: &LogSession) -> Result<Vec<String>, VendorError> {
        // A session is made by `create_log_session`, which checked its URL; checked again
        // here, as this reads whatever URL it is given.
        self.session_url(session.url.clone(), &session.app)?;
        let read = |url: String| {
            // The session URL is a capability on another host: no Authorization header.
            let req = Request::new(VENDOR, Method::GET, url)
                .route(format!("logplex session of {}", session.app))
                .header("Accept", "text/plain");
            self.transport.send_checked(req, parse_error)
        };
        let resp = match read(session.url.clone()).await {
            Err(e) if e.status() == Some(404) => {
                let again = self.open_log_session(&session.app, session.lines).await?;
                read(again.url).await?
            }
            r => r?,
        };
        Ok(resp
            .text()
            .lines()
            .filter_map(logplex_line)
            .map(str::to_string)
            .collect())
    }
}

/// An open log session: the app, and the session's URL, a capability (anyone holding it
/// reads the logs), kept here and never shown.
pub struct LogSession {
    app: String,
    lines: u32,
    url: String,
}

/// How long one tail stream is read at most before it is opened again (Heroku ends a
/// session after an hour, a Fir app's stream after 15 minutes).
const TAIL_OPEN: std::time::Duration = std::time::Duration::from_secs(3600);

/// How many times in a row a tail's stream may end without bringing anything, or fail to
/// open again, before it ends for good.
const TAIL_REOPENS: u32 = 3;

/// A Fir app's log sessions are asked with the SDK variant of the API version (the CLI's).
const ACCEPT_SDK: &str = "application/vnd.heroku+json; version=3.sdk";

/// `POST /apps/{app}/log-sessions`'s answer, as far as it is read.
#[derive(Deserialize)]
struct LogplexSession {
    logplex_url: String,
}

/// A log tail `HerokuClient::tail_logs` opened: its lines so far, read by a task of its own
/// until it is dropped.
pub struct LogTail {
    kept: std::sync::Arc<std::sync::Mutex<TailLines>>,
    watch: tokio::sync::watch::Receiver<()>,
    reader: tokio::task::JoinHandle<()>,
    /// How many lines (ever kept) `shows` has looked at, and whether one held its text.
    scanned: usize,
    found: bool,
}

/// What a tail has brought.
#[derive(Default, Clone, Debug)]
pub struct TailLines {
    /// The lines, oldest first (without the ones dropped).
    pub lines: std::collections::VecDeque<String>,
    /// The oldest lines let go to keep the rest within the most a runbook reads.
    pub dropped: usize,
    /// How many times the stream was opened again after it ended.
    pub reopened: u32,
    /// Lines may have been logged while the stream was closed: the new session's history
    /// did not reach back to the newest line kept (a Fir app's has none).
    pub gap: bool,
    /// Why the stream ended for good, if it did (it could not be opened again).
    pub ended: Option<String>,
    bytes: usize,
}

impl TailLines {
    fn keep(&mut self, line: String, most: usize) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > most {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            self.dropped += 1;
        }
    }
}

impl LogTail {
    /// What the tail has brought so far.
    pub fn lines(&self) -> TailLines {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a line containing `text` has arrived (one text per tail: each line is
    /// looked at once).
    pub fn shows(&mut self, text: &str) -> bool {
        if self.found {
            return true;
        }
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.scanned.saturating_sub(kept.dropped);
        self.found = kept.lines.iter().skip(start).any(|l| l.contains(text));
        self.scanned = kept.dropped + kept.lines.len();
        self.found
    }

    /// Whether the stream has ended for good.
    pub fn ended(&self) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.ended.is_some()
    }

    /// Resolves when more has arrived since the last call (or the stream ended).
    pub async fn changed(&mut self) {
        if self.watch.changed().await.is_err() {
            // The reader is gone: nothing more comes.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for LogTail {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads a tail into `kept`, saying so on `seen` after each chunk; opens it again when
/// its stream ends (backing off), asking for the same history and keeping only the lines
/// not kept yet. It ends for good after `TAIL_REOPENS` streams in a row that brought no new
/// line, or as many failed attempts to open it again.
async fn read_tail(
    heroku: HerokuClient,
    app: String,
    lines: u32,
    mut resp: reqwest::Response,
    kept: std::sync::Arc<std::sync::Mutex<TailLines>>,
    seen: tokio::sync::watch::Sender<()>,
    most: usize,
) {
    let mut known: Option<std::collections::HashSet<String>> = None;
    let mut empty = 0;
    loop {
        let (why, brought) = read_stream(&mut resp, &kept, &seen, most, known.as_ref()).await;
        empty = if brought { 0 } else { empty + 1 };
        let mut opened = None;
        let mut last = why.clone();
        let mut tries = 0;
        while opened.is_none() && empty < TAIL_REOPENS && tries < TAIL_REOPENS {
            tries += 1;
            tokio::time::sleep(std::time::Duration::from_millis(250 << tries)).await;
            match heroku.open_tail(&app, lines).await {
                Ok(r) => opened = Some(r),
                // The error names the route, never the session's URL.
                Err(e) => last = format!("{why}; opening it again failed: {e}"),
            }
        }
        let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = opened else {
            k.ended = Some(format!("{last} (opened again {} times before)", k.reopened));
            drop(k);
            seen.send_replace(());
            return;
        };
        k.reopened += 1;
        // The new session's history is the app's newest lines, as many as the first
        // session's: every one of them is kept already unless it was logged while the
        // stream was closed (lines of several sources arrive out of their stamps' order,
        // so it is the lines, not their times, that tell).
        known = Some(k.lines.iter().cloned().collect());
        drop(k);
        resp = r;
    }
}

/// A log line as a session serves it: a plain line (the older `srv` form) or a
/// server-sent event's `data:` (what the Heroku CLI reads today); `None` for an event's
/// other fields, comments and blank lines.
fn logplex_line(raw: &str) -> Option<&str> {
    let raw = raw.trim_end_matches('\r');
    let line = match raw.strip_prefix("data:") {
        Some(data) => data.strip_prefix(' ').unwrap_or(data),
        None if raw.starts_with(':')
            || ["id:", "event:", "retry:"]
                .iter()
                .any(|f| raw.starts_with(f)) =>
        {
            return None
        }
        None => raw,
    };
    (!line.trim().is_empty()).then_some(line)
}

#[cfg(test)]
/// A logplex line's timestamp (`2026-01-01T00:00:00.000000+00:00 source[dyno]: …`): lines
/// from one app compare in time order as text.
fn stamp(line: &str) -> Option<&str> {
    let first = line.split(' ').next()?;
    (first.len() >= 20 && first.as_bytes()[0].is_ascii_digit() && first.contains('T'))
        .then_some(first)
}

/// Reads one stream to its end: why it ended, and whether it brought a line not kept
/// before. `known`: a reopened stream's lines kept already (its history repeats them); a
/// first line that is not one of them means lines may have been logged while the stream
/// was closed (a gap: always so without history, as on Fir).
async fn read_stream(
    resp: &mut reqwest::Response,
    kept: &std::sync::Mutex<TailLines>,
    seen: &tokio::sync::watch::Sender<()>,
    most: usize,
    known: Option<&std::collections::HashSet<String>>,
) -> (String, bool) {
    let mut partial: Vec<u8> = Vec::new();
    let mut first = true;
    let mut brought = false;
    let why = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                partial.extend_from_slice(&chunk);
                let whole = match partial.iter().rposition(|b| *b == b'\n') {
                    Some(last) => {
                        let rest = partial.split_off(last + 1);
                        std::mem::replace(&mut partial, rest)
                    }
                    // A line longer than the most a runbook reads is kept cut.
                    None if partial.len() > most => std::mem::take(&mut partial),
                    None => continue,
                };
                let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                for line in String::from_utf8_lossy(&whole).lines() {
                    let Some(line) = logplex_line(line) else {
                        continue;
                    };
                    if let Some(known) = known {
                        let new = !known.contains(line);
                        if first {
                            first = false;
                            k.gap |= new && !known.is_empty();
                        }
                        if !new {
                            continue;
                        }
                    }
                    let mut line = line.to_string();
                    if line.len() > most {
                        let mut cut = most;
                        while !line.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        line.truncate(cut);
                    }
                    brought = true;
                    k.keep(line, most);
                }
                drop(k);
                seen.send_replace(());
            }
            Ok(None) => break "Heroku ended the log stream".to_string(),
            // reqwest's text names the URL, a capability: only what kind of failure it was.
            Err(e) if e.is_timeout() => break "the log stream was read for an hour".to_string(),
            Err(_) => break "the log stream's connection broke".to_string(),
        }
    };
    // A line cut by the stream's end is let go: the next session's history brings it whole.
    (why, brought)
}

/// The code of the refusal to read a Fir app's recent log lines (it keeps no history).
pub const NO_LOG_HISTORY: &str = "no_log_history";

/// Reads `{"id": "...", "message": "..."}`.
/// An HTTP `Date` (`Sat, 05 Dec 2026 11:42:47 GMT`).
fn http_date(s: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &format)
        .ok()
        .map(|t| t.assume_utc())
}

fn parse_error(resp: &RawResponse) -> ErrorDetail {
    #[derive(Deserialize)]
    struct Body {
        id: Option<String>,
        message: Option<String>,
    }
    let body: Option<Body> = serde_json::from_slice(&resp.body).ok();
    let id = body.as_ref().and_then(|b| b.id.clone());
    let (kind, hint) = match (resp.status, id.as_deref()) {
        (401, _) => (
            Some(ErrorKind::Unauthorized),
            Some("check HEROKU_API_KEY (a current key: `heroku auth:token`)"),
        ),
        (403, Some("two_factor")) => (
            Some(ErrorKind::Forbidden),
            Some("this action needs a second factor; use an API key that does not require 2FA"),
        ),
        (403, _) => (
            Some(ErrorKind::Forbidden),
            Some("the key lacks a scope (config vars need read-protected / write-protected: `heroku authorizations:create --scope read-protected,write-protected`, or the account key from `heroku auth:token`), or its user lacks access to this app (ask an app admin)"),
        ),
        (404, _) => (
            Some(ErrorKind::NotFound),
            Some("check the app name (`heroku apps`) and that the key's user can see it"),
        ),
        (406, _) => (Some(ErrorKind::Other), None),
        (429, _) => (Some(ErrorKind::RateLimited), None),
        _ => (None, None),
    };
    ErrorDetail {
        code: id.map(VendorCode::Text),
        message: body.and_then(|b| b.message),
        kind,
        hint: hint.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing whose pages do not end is an error saying why, not a clean partial list:
    /// Heroku giving the `Next-Range` it was just asked for again (the apps), or more pages
    /// than runbook reads (the releases: the hint says to ask for the newest only). Each
    /// stops at once, one request after the page that showed it.
    #[tokio::test]
    async fn a_listing_that_does_not_end_is_an_error_not_a_partial_list() {
        use axum::http::{HeaderMap as Headers, StatusCode};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (apps_asked, releases_asked) = (asked.clone(), asked.clone());
        let app = axum::Router::new()
            .route(
                "/apps",
                axum::routing::get(move || async move {
                    apps_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [("Next-Range", "]app-1..; max=1000")],
                        r#"[{"name":"app-1"}]"#,
                    )
                }),
            )
            .route(
                "/apps/app-1/releases",
                axum::routing::get(move |headers: Headers| async move {
                    releases_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let range = headers
                        .get("Range")
                        .and_then(|r| r.to_str().ok())
                        .unwrap_or("version ..")
                        .to_string();
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [("Next-Range", format!("{range}+"))],
                        r#"[{"id":"r","version":1}]"#,
                    )
                }),
            );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let transport = Transport::new(crate::transport::TransportConfig::default()).unwrap();
        let key = Secret::new("HRKU-listing-test-0001", runbook_secret::Source::Literal);
        let client = HerokuClient::new(transport, format!("http://127.0.0.1:{port}"), Some(key));

        let e = client.apps().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResponse);
        assert!(
            e.to_string()
                .contains("the listing is incomplete: Heroku gave the same Next-Range again"),
            "{e}"
        );
        assert_eq!(asked.swap(0, std::sync::atomic::Ordering::SeqCst), 2);

        let e = client.releases("app-1").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("the listing is longer than runbook reads (50 pages)"),
            "{e}"
        );
        assert!(e
            .help_text()
            .contains("heroku::releases(app, #{ newest: N })"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 50);
        server.abort();
    }

    /// A log session Heroku says is on this machine is not read, unless Heroku is here too
    /// (a rehearsal): plain HTTP to loopback read a local service's page as log lines.
    #[test]
    fn a_log_session_on_this_machine_is_read_only_in_a_rehearsal() {
        let transport = Transport::new(crate::transport::TransportConfig::default()).unwrap();
        let real = HerokuClient::new(transport.clone(), "https://api.heroku.com", None);
        let err = real
            .session_url("http://127.0.0.1:8200/v1/sys/health".into(), "app")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("points the log session at this machine"),
            "{err}"
        );
        assert!(real
            .session_url("https://logs.heroku.com/s/1".into(), "app")
            .is_ok());
        // Nor through a session read by its URL (review: only the tail was guarded).
        let session = LogSession {
            app: "app".into(),
            lines: 10,
            url: "http://127.0.0.1:8200/v1/sys/health".into(),
        };
        let err = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(real.read_log_session(&session))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("points the log session at this machine"),
            "{err}"
        );
        let rehearsal = HerokuClient::new(transport, "http://127.0.0.1:4100", None);
        assert!(rehearsal
            .session_url("http://127.0.0.1:4100/logs/1".into(), "app")
            .is_ok());
    }
    use crate::testkit::{start, start_with};
    use runbook_sandbox::Scenario;
    use runbook_secret::Source;

    fn sop() -> Scenario {
        Scenario::default().with_postmark_token("hk-current-0001")
    }

    /// An opaque config value sent back to Heroku joins the redactor as it is sent: before,
    /// a vendor answer quoting it was shown in clear (cold review; `http::` already did).
    #[test]
    fn an_opaque_value_sent_in_a_config_change_is_masked_from_then_on() {
        let opaque = "alpha-alpha-9";
        let value = ConfigValue::Secret(Secret::from_bulk("LAUNCH_CODE", opaque, Source::Text));
        let quoted = format!("Heroku refused {opaque}");
        assert!(
            runbook_secret::redact(&quoted).contains(opaque),
            "opaque, not registered yet"
        );
        assert_eq!(value.expose(), opaque);
        assert!(!runbook_secret::redact(&quoted).contains(opaque));
    }

    #[tokio::test]
    async fn reads_config_vars_without_printing_values() {
        let (_sb, v) = start(sop()).await;
        let vars = v.heroku().config_vars("raxx-api-prod").await.unwrap();
        assert_eq!(vars.get("POSTMARK_SERVER_TOKEN"), Some("hk-current-0001"));
        let dbg = format!("{vars:?}");
        assert!(dbg.contains("POSTMARK_SERVER_TOKEN") && !dbg.contains("hk-current-0001"));
    }

    #[tokio::test]
    async fn update_makes_a_release_and_restarts() {
        let (sb, v) = start(sop()).await;
        let h = v.heroku();
        let new = Secret::new("hk-new-0002", Source::Literal);
        let changes = BTreeMap::from([
            (
                "POSTMARK_SERVER_TOKEN".to_string(),
                Some(ConfigValue::from(&new)),
            ),
            ("RAPTOR_ENV".to_string(), None),
        ]);
        let vars = h
            .update_config_vars("raxx-api-prod", &changes)
            .await
            .unwrap();
        assert_eq!(vars.get("POSTMARK_SERVER_TOKEN"), Some("hk-new-0002"));
        assert_eq!(vars.get("RAPTOR_ENV"), None);
        let rels = h.releases("raxx-api-prod").await.unwrap();
        assert_eq!(
            rels.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            rels[1].description,
            "Set POSTMARK_SERVER_TOKEN config vars; Remove RAPTOR_ENV config vars"
        );
        assert!(rels[1].current);
        assert_eq!(
            h.latest_release("raxx-api-prod")
                .await
                .unwrap()
                .map(|r| r.version),
            Some(2)
        );
        assert_eq!(sb.state()["heroku"]["apps"]["raxx-api-prod"]["restarts"], 1);
        // The same change again still releases and restarts, as Heroku does: a retried
        // propagate restarts the apps again.
        h.update_config_vars("raxx-api-prod", &changes)
            .await
            .unwrap();
        assert_eq!(sb.state()["heroku"]["apps"]["raxx-api-prod"]["restarts"], 2);
    }

    #[tokio::test]
    async fn restart_all_restarts_and_logs() {
        let (sb, v) = start(sop()).await;
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        assert_eq!(
            sb.state()["heroku"]["apps"]["raxx-api-staging"]["restarts"],
            1
        );
        let lines = v.heroku().log_lines("raxx-api-staging", 50).await.unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("heroku[web.1]: Restarting")),
            "{lines:#?}"
        );
    }

    /// A session left unused expires (about five minutes at Heroku): reading it then is a
    /// 404, and it is opened again instead of failing the verify.
    #[tokio::test]
    async fn an_expired_log_session_is_opened_again() {
        let (sb, v) = start(sop()).await;
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        let mut session = v
            .heroku()
            .open_log_session("raxx-api-staging", 50)
            .await
            .unwrap();
        // What an expired session's URL is: one the log service no longer knows.
        session.url = format!("{}/sessions/expired?srv=1", sb.heroku_url());
        let lines = v.heroku().read_log_session(&session).await.unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("heroku[web.1]: Restarting")),
            "{lines:#?}"
        );
        let opened = sb.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/apps/raxx-api-staging/log-sessions")
            .count();
        assert_eq!(opened, 2);
    }

    /// How many times a log session's stream was asked for.
    fn session_reads(sb: &runbook_sandbox::Sandbox) -> usize {
        sb.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/sessions/"))
            .count()
    }

    /// Waits (at most 10 s: a bug fails the test, it does not hang it) until `tail` has
    /// brought a line ending with `text`.
    async fn until_shown(tail: &mut LogTail, text: &str) {
        let shown = async {
            while !tail.lines().lines.iter().any(|l| l.ends_with(text)) {
                tail.changed().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), shown)
            .await
            .unwrap_or_else(|_| panic!("never shown: {text}: {:#?}", tail.lines()));
    }

    /// `heroku logs --tail`: a tail opened before a restart brings the restart's lines as
    /// they are logged, on the one answer.
    #[tokio::test]
    async fn a_tail_brings_what_is_logged_after_it_opened() {
        let (sb, v) = start(sop()).await;
        let mut tail = v.heroku().tail_logs("raxx-api-staging", 50).await.unwrap();
        assert!(!tail.shows("Restarting"), "{:?}", tail.lines());
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        until_shown(&mut tail, "heroku[web.1]: Restarting").await;
        let got = tail.lines();
        assert_eq!((got.dropped, got.reopened, got.ended), (0, 0, None));
        assert_eq!(session_reads(&sb), 1);
    }

    /// A tail whose first connection is lost, or answered 503, is opened again, as any read
    /// is. Before, one lost connection failed verify ("Heroku refused a log session").
    #[tokio::test]
    async fn a_tail_whose_connection_is_lost_is_tried_again() {
        let mut s = sop();
        for spec in [
            "heroku:GET:/sessions/*=drop:once",
            "heroku:GET:/sessions/*=503:once",
        ] {
            s.faults
                .push(runbook_sandbox::FaultRule::parse(spec).unwrap());
        }
        let (sb, v) = start(s).await;
        let mut tail = v.heroku().tail_logs("raxx-api-staging", 50).await.unwrap();
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        until_shown(&mut tail, "heroku[web.1]: Restarting").await;
        assert_eq!(session_reads(&sb), 3);
    }

    /// A stream that Heroku ends (a session's hour, a Fir app's 15 minutes) is opened
    /// again, asking for the same history, and keeps only the lines newer than the newest
    /// it kept: in time order, none twice, none older appended after newer ones. Once it
    /// ends `TAIL_REOPENS` times in a row without a new line it ends for good, saying so.
    #[tokio::test]
    async fn a_tail_that_heroku_ends_is_opened_again_without_repeating_lines() {
        let mut s = sop();
        s.heroku.log_stream_ms = Some(150);
        let (_sb, v) = start(s).await;
        // More history than the tail asks for: a reopen must not bring the older lines.
        for _ in 0..4 {
            v.heroku().restart_all("raxx-api-staging").await.unwrap();
        }
        let mut tail = v.heroku().tail_logs("raxx-api-staging", 5).await.unwrap();
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        let ended = async {
            while !tail.ended() {
                tail.changed().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), ended)
            .await
            .expect("the tail never ended");
        let got = tail.lines();
        assert!(got.reopened >= TAIL_REOPENS, "{got:#?}");
        assert!(!got.gap, "{got:#?}");
        assert!(
            got.ended
                .as_deref()
                .is_some_and(|e| e.starts_with("Heroku ended the log stream (opened again")),
            "{got:#?}"
        );
        let lines: Vec<&String> = got.lines.iter().collect();
        let unique: std::collections::HashSet<&String> = lines.iter().copied().collect();
        assert_eq!(unique.len(), lines.len(), "a line twice: {lines:#?}");
        let stamps: Vec<&str> = lines.iter().filter_map(|l| stamp(l)).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{lines:#?}");
        // The 5 lines of history (the fourth restart's) and the fifth restart's: none of
        // the three restarts before them.
        let restarts = lines.iter().filter(|l| l.ends_with(": Restarting")).count();
        assert_eq!(restarts, 2, "{lines:#?}");
    }

    /// A Fir app's session is asked as the Heroku CLI asks it (`version=3.sdk`), which
    /// answers server-sent events: the tail keeps the log lines, not the events' fields.
    #[tokio::test]
    async fn a_fir_tail_reads_server_sent_events_as_lines() {
        let mut s = sop();
        for app in &mut s.heroku.apps {
            app.generation = "fir".into();
        }
        let (_sb, v) = start(s).await;
        let mut tail = v.heroku().tail_logs("raxx-api-staging", 50).await.unwrap();
        v.heroku().restart_all("raxx-api-staging").await.unwrap();
        until_shown(&mut tail, "heroku[web.1]: Restarting").await;
        let got = tail.lines();
        assert!(
            got.lines.iter().all(|l| stamp(l).is_some()),
            "{:#?}",
            got.lines
        );
    }

    /// A session's URL is a capability: a failure to read it names the session's app, never
    /// the URL (reqwest's text may hold it: " for url (…)"; a refused connection, as here,
    /// carries none in reqwest 0.13, so this holds either way).
    #[tokio::test]
    async fn a_log_session_that_cannot_be_reached_does_not_show_its_url() {
        let (_sb, v) = start(sop()).await;
        let mut session = v
            .heroku()
            .open_log_session("raxx-api-staging", 50)
            .await
            .unwrap();
        session.url = "http://127.0.0.1:9/sessions/capability-4e1d?srv=1".into();
        let e = v.heroku().read_log_session(&session).await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("logplex session of raxx-api-staging"),
            "{text}"
        );
        assert!(!text.contains("capability-4e1d"), "{text}");
    }

    /// A Fir app's log session streams and never ends: reading it for recent lines waited
    /// until the HTTP timeout. The generation is read first and the app refused at once,
    /// without opening a session.
    #[tokio::test]
    async fn a_fir_apps_recent_lines_are_refused_at_once_not_waited_for() {
        let mut scenario = sop();
        scenario.heroku.apps[0].generation = "fir".into();
        let (sb, v) = start(scenario).await;
        let e = v.heroku().log_lines("raxx-api-prod", 50).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(
            e.message().contains("raxx-api-prod is a Fir app: its log sessions stream only what is logged from now on (no history)"),
            "{e}"
        );
        let sessions = sb
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/log-sessions"))
            .count();
        assert_eq!(sessions, 0, "no session was opened");
        // An app list the run has read already says which apps are Fir: no second look.
        let h = v.heroku();
        h.apps().await.unwrap();
        h.log_lines("raxx-api-staging", 10).await.unwrap();
        let looked = sb
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/apps/raxx-api-staging")
            .count();
        assert_eq!(looked, 0);
    }

    /// Heroku's `Date` is read as UTC; anything else is no time at all.
    #[test]
    fn an_http_date_is_read() {
        let t = http_date("Sat, 05 Dec 2026 11:42:47 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_470_967);
        assert_eq!(http_date("2026-12-05T11:42:47Z"), None);
    }

    /// The dynos come with the time Heroku answered; preboot is read from the app's feature.
    #[tokio::test]
    async fn dynos_carry_herokus_time_and_preboot_is_the_apps_feature() {
        let mut scenario = sop();
        scenario.heroku.apps[0].preboot = true;
        let (_sb, v) = start(scenario).await;
        let app = "raxx-api-prod";
        let dynos = v.heroku().dynos(app).await.unwrap();
        let skew = dynos.answered_at.unwrap() - time::OffsetDateTime::now_utc();
        assert!(skew.abs() < time::Duration::seconds(5), "{skew}");
        assert!(dynos.list[0].updated_at.is_some());
        assert!(v.heroku().preboot(app).await.unwrap());
        assert!(!v.heroku().preboot("raxx-api-staging").await.unwrap());
    }

    #[tokio::test]
    async fn unknown_app_is_not_found_with_herokus_body() {
        let (_sb, v) = start(sop()).await;
        let e = v.heroku().config_vars("no-such-app").await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::NotFound, Some(404)));
        assert_eq!(e.code(), Some(&VendorCode::Text("not_found".into())));
        assert_eq!(e.message(), "Couldn't find that app.");
        assert_eq!(
            e.to_string(),
            "heroku GET /apps/no-such-app/config-vars → 404 Not Found: Couldn't find that app. (id not_found)"
        );
    }

    #[tokio::test]
    async fn a_bad_key_is_unauthorized_and_says_which_variable() {
        let (_sb, v) = start_with(sop(), |_, c| {
            c.heroku.api_key = Some(Secret::new("wrong-heroku-key", Source::Literal));
        })
        .await;
        let e = v.heroku().restart_all("raxx-api-prod").await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unauthorized, Some(401)));
        assert_eq!(e.code(), Some(&VendorCode::Text("unauthorized".into())));
        assert!(e.help_text().contains("HEROKU_API_KEY"));
        let (_sb, v) = start_with(sop(), |_, c| c.heroku.api_key = None).await;
        let e = v.heroku().config_vars("raxx-api-prod").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("HEROKU_API_KEY"));
    }

    #[tokio::test]
    async fn invalid_config_names_are_422() {
        let (_sb, v) = start(sop()).await;
        let changes = BTreeMap::from([("BAD-NAME".to_string(), Some(ConfigValue::from("x")))]);
        let e = v
            .heroku()
            .update_config_vars("raxx-api-prod", &changes)
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Validation, Some(422)));
        assert_eq!(e.code(), Some(&VendorCode::Text("invalid_params".into())));
    }

    #[tokio::test]
    async fn a_patch_dropped_after_one_success_is_retried() {
        let (sb, v) = start(sop()).await;
        sb.add_fault(
            runbook_sandbox::FaultRule::parse(
                "heroku:PATCH:/apps/*/config-vars=drop:after=1:times=1",
            )
            .unwrap(),
        );
        let changes = |v: &str| BTreeMap::from([("A".to_string(), Some(ConfigValue::from(v)))]);
        v.heroku()
            .update_config_vars("raxx-api-prod", &changes("1"))
            .await
            .unwrap();
        v.heroku()
            .update_config_vars("raxx-api-staging", &changes("2"))
            .await
            .unwrap();
        assert_eq!(
            sb.count_requests("heroku", "PATCH", "/apps/raxx-api-staging/config-vars"),
            2
        );
    }
}
