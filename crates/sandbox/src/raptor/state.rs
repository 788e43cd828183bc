//! The downstream app's data: one instance per app with the token it read at its last start
//! and what its sends came to; and how it reacts to a restart and to passing time.

use crate::faults::{FaultAction, FaultSet};
use crate::heroku::HerokuState;
use crate::postmark::SendError;
use crate::scenario::TOKEN_VAR;
use crate::World;
use serde_json::{json, Map, Value};

pub(crate) struct Instance {
    pub(super) app: String,
    pub(super) token: Option<String>,
    pub(super) sent: u64,
    pub(super) failed: u64,
    pub(super) failed_401: u64,
    pub(super) test_emails: u64,
}

pub(crate) struct RaptorState {
    pub(super) instances: Vec<Instance>,
}

impl RaptorState {
    /// One instance per app whose config holds the token var at start.
    pub fn from_heroku(h: &HerokuState) -> Self {
        RaptorState {
            instances: h
                .apps
                .iter()
                .filter(|a| a.config.contains_key(TOKEN_VAR))
                .map(|a| Instance {
                    app: a.name.clone(),
                    token: a.config.get(TOKEN_VAR).cloned(),
                    sent: 0,
                    failed: 0,
                    failed_401: 0,
                    test_emails: 0,
                })
                .collect(),
        }
    }

    pub fn total_401s(&self) -> u64 {
        self.instances.iter().map(|i| i.failed_401).sum()
    }

    pub fn to_json(&self) -> Value {
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

/// The app restarted: re-read the token from its config vars.
pub(crate) fn on_restart(w: &mut World, app: &str) {
    let token = w
        .heroku
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.config.get(TOKEN_VAR).cloned());
    if let Some(i) = w.raptor.instances.iter_mut().find(|i| i.app == app) {
        i.token = token;
        if let Some(a) = w.heroku.app_mut(app) {
            a.log(
                "app[web.1]",
                "raptor booted; postmark client configured from POSTMARK_SERVER_TOKEN",
            );
        }
    }
}

/// A fault on Raptor's own outbound sends: `raptor:POST:/{app}/postmark/email=401` makes
/// Postmark reject that app's mail (e.g. a token Postmark no longer accepts for it).
pub(super) fn outbound_fault(faults: &FaultSet, app: &str) -> Option<SendError> {
    match faults.take("raptor", "POST", &format!("/{app}/postmark/email")) {
        Some((FaultAction::Status(status), _)) => Some(SendError {
            status,
            code: if status == 401 { 10 } else { 0 },
            message: "injected: Postmark rejected the app's request".into(),
        }),
        _ => None,
    }
}

/// One background email per instance with its current token.
pub(crate) fn background_tick(w: &mut World, faults: &FaultSet) {
    for idx in 0..w.raptor.instances.len() {
        let inst = &w.raptor.instances[idx];
        let result = match outbound_fault(faults, &inst.app) {
            Some(e) => Err(e),
            None => w.postmark.check_token(inst.token.as_deref()),
        };
        let app = inst.app.clone();
        let inst = &mut w.raptor.instances[idx];
        match result {
            Ok(()) => inst.sent += 1,
            Err(e) => {
                inst.failed += 1;
                if e.status == 401 {
                    inst.failed_401 += 1;
                }
                if let Some(a) = w.heroku.app_mut(&app) {
                    a.log("app[web.1]", &failure_line(e.status, e.code, &e.message));
                }
            }
        }
    }
}

pub(super) fn failure_line(status: u16, code: i64, message: &str) -> String {
    let name = if status == 401 {
        "InvalidAPIToken"
    } else {
        "PostmarkError"
    };
    format!("postmark error {status} {name}: {message} (ErrorCode {code})")
}
