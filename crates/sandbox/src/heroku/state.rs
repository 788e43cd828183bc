//! The Heroku simulator's data: apps with their config vars, releases, dynos and logs, and
//! the log sessions opened on them.

use crate::scenario::{resolve, HerokuScenario};
use crate::{raptor, ts, SandboxError, World};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Logplex keeps about this many lines per app.
const LOG_KEEP: usize = 1500;

pub(crate) struct HRelease {
    pub(super) id: String,
    pub(super) version: u64,
    pub(super) description: String,
    pub(super) created_at: String,
    pub(super) config: BTreeMap<String, String>,
}

pub(crate) struct HApp {
    pub(super) id: String,
    pub(crate) name: String,
    pub(crate) config: BTreeMap<String, String>,
    pub(super) releases: Vec<HRelease>,
    pub(super) restarts: u64,
    pub(super) dynos: Vec<String>,
    pub(super) logs: Vec<String>,
    pub(super) created_at: String,
}

impl HApp {
    /// Appends a logplex-style line: `<timestamp> <source>[<dyno>]: <message>`.
    pub fn log(&mut self, source_dyno: &str, message: &str) {
        self.logs
            .push(format!("{} {source_dyno}: {message}", ts::log()));
        if self.logs.len() > LOG_KEEP {
            let extra = self.logs.len() - LOG_KEEP;
            self.logs.drain(..extra);
        }
    }

    pub(super) fn web_dyno(&self) -> String {
        self.dynos
            .first()
            .cloned()
            .unwrap_or_else(|| "web.1".into())
    }
}

pub(super) struct LogSession {
    pub(super) app: String,
    pub(super) lines: usize,
    pub(super) dyno: Option<String>,
    pub(super) source: Option<String>,
}

pub(crate) struct HerokuState {
    pub(crate) apps: Vec<HApp>,
    pub(super) sessions: HashMap<String, LogSession>,
    pub(super) user_email: String,
    pub(super) user_id: String,
}

impl HerokuState {
    pub fn from_scenario(
        s: &HerokuScenario,
        tokens_of: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<Self, SandboxError> {
        let user_id = uuid::Uuid::new_v4().to_string();
        let mut apps = Vec::new();
        for spec in &s.apps {
            if spec.name.is_empty() {
                return Err(SandboxError::Scenario {
                    message: "a heroku app needs a name".into(),
                });
            }
            let mut config = BTreeMap::new();
            for (k, v) in &spec.config {
                config.insert(k.clone(), resolve(v, tokens_of)?);
            }
            let release = HRelease {
                id: uuid::Uuid::new_v4().to_string(),
                version: 1,
                description: "Initial release".into(),
                created_at: ts::seconds(),
                config: config.clone(),
            };
            let mut app = HApp {
                id: uuid::Uuid::new_v4().to_string(),
                name: spec.name.clone(),
                config,
                releases: vec![release],
                restarts: 0,
                dynos: if spec.dynos.is_empty() {
                    vec!["web.1".into()]
                } else {
                    spec.dynos.clone()
                },
                logs: Vec::new(),
                created_at: ts::seconds(),
            };
            let dyno = app.web_dyno();
            app.log(
                &format!("heroku[{dyno}]"),
                "State changed from starting to up",
            );
            apps.push(app);
        }
        Ok(HerokuState {
            apps,
            sessions: HashMap::new(),
            user_email: s.user_email.clone(),
            user_id,
        })
    }

    pub fn app_mut(&mut self, name: &str) -> Option<&mut HApp> {
        self.apps
            .iter_mut()
            .find(|a| a.name == name || a.id == name)
    }

    pub(super) fn app(&self, name: &str) -> Option<&HApp> {
        self.apps.iter().find(|a| a.name == name || a.id == name)
    }

    pub(super) fn release_json(&self, app: &HApp, r: &HRelease) -> Value {
        let current = app.releases.last().map(|l| l.version) == Some(r.version);
        json!({
            "addon_plan_names": [],
            "artifacts": [],
            "app": {"id": app.id, "name": app.name},
            "created_at": r.created_at,
            "description": r.description,
            "id": r.id,
            "updated_at": r.created_at,
            "slug": null,
            "status": "succeeded",
            "user": {"id": self.user_id, "email": self.user_email},
            "version": r.version,
            "current": current,
            "output_stream_url": null,
            "eligible_for_rollback": !current,
        })
    }

    pub fn to_json(&self) -> Value {
        let apps: Map<String, Value> = self
            .apps
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    json!({
                        "config_vars": a.config,
                        "restarts": a.restarts,
                        "releases": a.releases.iter().map(|r| json!({"version": r.version, "description": r.description})).collect::<Vec<_>>(),
                        "logs": a.logs,
                    }),
                )
            })
            .collect();
        json!({"apps": apps})
    }
}

/// Restarts every dyno of `app`: counts it, logs it, and Raptor re-reads its config.
pub(crate) fn restart(w: &mut World, app: &str) {
    let Some(a) = w.heroku.app_mut(app) else {
        return;
    };
    a.restarts += 1;
    for dyno in a.dynos.clone() {
        let tag = format!("heroku[{dyno}]");
        a.log(&tag, "Restarting");
        a.log(&tag, "State changed from up to starting");
        a.log(&tag, "Stopping all processes with SIGTERM");
        a.log(&tag, "Process exited with status 143");
        a.log(&tag, "State changed from starting to up");
    }
    let name = a.name.clone();
    raptor::on_restart(w, &name);
}

pub(super) fn find_release<'a>(a: &'a HApp, id: &str) -> Option<&'a HRelease> {
    a.releases
        .iter()
        .find(|r| r.id == id || id.parse::<u64>().ok() == Some(r.version))
}
