//! The downstream app's data: one instance per app with the token it read at its last start
//! and what its sends came to; and how it reacts to a restart and to passing time.

use super::Raptor;
use crate::faults::FaultSet;
use crate::scenario::TOKEN_VAR;
use crate::simulator::Simulator;
use crate::world::{Event, Platform, SendError, World};
use serde_json::{json, Map, Value};

/// The log source of the app's own lines.
pub(super) const SOURCE: &str = "app[web.1]";

pub(super) struct Instance {
    pub(super) app: String,
    /// The token the serving processes use.
    pub(super) token: Option<String>,
    /// With preboot: the token the new processes read, in use once they are up.
    next_token: Option<Option<String>>,
    sent: u64,
    failed: u64,
    failed_401: u64,
    pub(super) test_emails: u64,
}

pub(super) struct RaptorState {
    pub(super) instances: Vec<Instance>,
}

impl RaptorState {
    /// One instance per app whose config holds the token var at start.
    pub(super) fn from_platform(platform: Option<&dyn Platform>) -> Self {
        let instances = platform.map_or_else(Vec::new, |p| {
            p.apps()
                .into_iter()
                .filter_map(|app| {
                    let token = p.config_var(&app, TOKEN_VAR)?;
                    Some(Instance {
                        app,
                        token: Some(token),
                        next_token: None,
                        sent: 0,
                        failed: 0,
                        failed_401: 0,
                        test_emails: 0,
                    })
                })
                .collect()
        });
        RaptorState { instances }
    }

    pub(super) fn total_401s(&self) -> u64 {
        self.instances.iter().map(|i| i.failed_401).sum()
    }

    pub(super) fn to_json(&self) -> Value {
        let m: Map<String, Value> = self
            .instances
            .iter()
            .map(|i| {
                (
                    i.app.clone(),
                    json!({"sent": i.sent, "failed": i.failed, "failed_401": i.failed_401, "test_emails": i.test_emails}),
                )
            })
            .collect();
        Value::Object(m)
    }
}

/// What the app does when the world changes: it re-reads its token at a restart, and sends
/// its background email as time passes.
pub(super) fn on_event(w: &mut World, event: &Event<'_>) {
    w.scope(|st: &mut RaptorState, w| match event {
        Event::Restarted { app } => on_restart(st, w, app),
        Event::Tick { faults } => background_tick(st, w, faults),
    });
}

/// The app restarted: the new processes read the token from its config vars. With preboot
/// the old ones keep serving with the old token until the new ones are up.
fn on_restart(st: &mut RaptorState, w: &mut World, app: &str) {
    let Some(platform) = w.platform_mut() else {
        return;
    };
    let token = platform.config_var(app, TOKEN_VAR);
    let prebooting = platform.old_dynos_serve(app);
    if let Some(i) = st.instances.iter_mut().find(|i| i.app == app) {
        i.next_token = Some(token);
        if !prebooting {
            i.catch_up(w);
        }
    }
}

impl Instance {
    /// Once the new processes serve, their token is the one in use.
    pub(super) fn catch_up(&mut self, w: &mut World) {
        // Asked of every app at every request: most have nothing to catch up on.
        if self.next_token.is_none() {
            return;
        }
        let Some(platform) = w.platform_mut() else {
            return;
        };
        // While old processes serve (preboot), the old token stays in use.
        if platform.old_dynos_serve(&self.app) {
            return;
        }
        if let Some(token) = self.next_token.take() {
            self.token = token;
            platform.log(
                &self.app,
                SOURCE,
                "raptor booted; postmark client configured from POSTMARK_SERVER_TOKEN",
            );
        }
    }
}

/// A fault on Raptor's own outbound sends: `raptor:POST:/{app}/postmark/email=401` makes
/// Postmark reject that app's mail (e.g. a token Postmark no longer accepts for it).
pub(super) fn outbound_fault(faults: &FaultSet, app: &str) -> Option<SendError> {
    let status = faults.take_status(Raptor.name(), "POST", || format!("/{app}/postmark/email"))?;
    Some(SendError {
        status,
        code: if status == 401 { 10 } else { 0 },
        message: "injected: Postmark rejected the app's request".into(),
    })
}

/// One background email per instance with its current token. Every request of the
/// sandbox ticks every instance, so the sends are found with the world read once (in a
/// world of 1,000 apps, looking the platform and the mail service up for each instance,
/// and a fault path made for each, were most of what a request cost the simulator), and
/// only what changed is written back.
fn background_tick(st: &mut RaptorState, w: &mut World, faults: &FaultSet) {
    // An app scaled to zero runs nothing, so sends nothing.
    let runs = |w: &World, app: &str| w.platform().is_none_or(|p| p.runs(app));
    for inst in &mut st.instances {
        if inst.next_token.is_some() && runs(w, &inst.app) {
            inst.catch_up(w);
        }
    }
    let mut failures = Vec::new();
    {
        let (platform, Some(mail)) = (w.platform(), w.mail()) else {
            return;
        };
        for inst in &mut st.instances {
            if platform.is_some_and(|p| !p.runs(&inst.app)) {
                continue;
            }
            let result = match outbound_fault(faults, &inst.app) {
                Some(e) => Err(e),
                None => mail.check_token(inst.token.as_deref()),
            };
            match result {
                Ok(()) => inst.sent += 1,
                Err(e) => {
                    inst.failed += 1;
                    if e.status == 401 {
                        inst.failed_401 += 1;
                    }
                    failures.push((inst.app.clone(), failure_line(&e)));
                }
            }
        }
    }
    if let Some(p) = w.platform_mut() {
        for (app, line) in failures {
            p.log(&app, SOURCE, &line);
        }
    }
}

/// The log line of a failed send.
pub(super) fn failure_line(e: &SendError) -> String {
    let name = if e.status == 401 {
        "InvalidAPIToken"
    } else {
        "PostmarkError"
    };
    format!(
        "postmark error {} {name}: {} (ErrorCode {})",
        e.status, e.message, e.code
    )
}
