//! The Heroku simulator's data: apps with their config vars, releases, dynos and logs, and
//! the log sessions opened on them.

use crate::scenario::{resolve, HerokuScenario, ReleaseOutcome, ReleasePhaseSpec};
use crate::world::{Event, Platform, TokensOf, World};
use crate::{ts, SandboxError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Whether dyno `name` is a one-off: a console, a scheduled job or a release command.
pub(super) fn is_one_off(name: &str) -> bool {
    matches!(
        name.split('.').next(),
        Some("run" | "scheduler" | "release")
    )
}

/// Logplex keeps about this many lines per app.
const LOG_KEEP: usize = 1500;

pub(super) struct HRelease {
    pub(super) id: String,
    pub(super) version: u64,
    description: String,
    pub(super) created_at: String,
    pub(super) config: BTreeMap<String, String>,
    /// `succeeded`, `pending` (its release command runs) or `failed`.
    pub(super) status: &'static str,
    /// While pending: when the release command ends, and how.
    phase_ends: Option<(std::time::Instant, ReleaseOutcome)>,
}

pub(super) struct HApp {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) config: BTreeMap<String, String>,
    pub(super) releases: Vec<HRelease>,
    restarts: u64,
    pub(super) dynos: Vec<String>,
    pub(super) logs: Vec<String>,
    /// When each line of `logs` was logged.
    log_times: Vec<std::time::Instant>,
    /// Lines ever logged: `logs` keeps the last LOG_KEEP of them.
    pub(super) logged: usize,
    /// How long a line takes to reach log sessions.
    log_delay: std::time::Duration,
    /// Its router logs a client's failed login at every request served.
    client_401s: bool,
    pub(super) created_at: String,
    /// `cedar` or `fir`.
    pub(super) generation: String,
    boot: std::time::Duration,
    /// While a restart boots: when it is up.
    booting_until: Option<std::time::Instant>,
    /// Heroku's preboot: old dynos serve until traffic moves to the new ones.
    pub(super) preboot: bool,
    /// With preboot: how long after a restart traffic moves to the new dynos.
    preboot_window: std::time::Duration,
    /// During a preboot: when traffic moves to the new dynos.
    switch_at: Option<std::time::Instant>,
    /// When the dynos last changed state (Heroku's `updated_at` of a dyno): the restart,
    /// then the end of the boot (when it ended, not when it was seen).
    pub(super) dynos_changed_at: String,
    /// When the dynos were started (Heroku's `created_at` of a dyno).
    pub(super) dynos_created_at: String,
    /// When the last restart was, on the wall clock (the boot's end is counted from it).
    restarted_wall: time::OffsetDateTime,
    release_phase: Option<ReleasePhaseSpec>,
    /// The release (id, version) the dynos run, or the new dynos boot on.
    pub(super) running: (String, u64),
    /// During a preboot: the release the old dynos still serve (they are not listed).
    pub(super) prebooting_from: Option<(String, u64)>,
    /// A release phase succeeded, or a delayed restart's time came: the app restarts on
    /// its newest release at the next tick.
    restart_due: bool,
    /// How long after a config change its restart begins.
    restart_delay: std::time::Duration,
    /// A config change's restart that has not begun yet: when it does.
    restart_at: Option<std::time::Instant>,
}

impl HApp {
    /// Ends a boot whose time has come: the dynos are up and say so in the log. Time is
    /// looked at when the app is, so the "up" line appears once something observes it.
    pub(super) fn settle(&mut self) {
        // Every request ticks every app: in a world of 1,000 apps, reading the clock for
        // each was a tenth of the simulator's time, with nothing due in nearly all of them.
        if !self.awaits_time() {
            return;
        }
        let now = std::time::Instant::now();
        if self.booting_until.is_some_and(|until| now >= until) {
            self.booting_until = None;
            self.dynos_changed_at = ts::seconds_at(self.restarted_wall + self.boot);
            for dyno in self.formation_dynos().cloned().collect::<Vec<_>>() {
                self.log(
                    &format!("heroku[{dyno}]"),
                    "State changed from starting to up",
                );
            }
        }
        // The preboot's old dynos stop once traffic has moved to the new ones: the window
        // after the change, not when the new ones are up.
        if self.booting_until.is_none()
            && self.prebooting_from.is_some()
            && self.switch_at.is_none_or(|at| now >= at)
        {
            self.prebooting_from = None;
            self.switch_at = None;
            for dyno in self.formation_dynos().cloned().collect::<Vec<_>>() {
                self.log(
                    &format!("heroku[{dyno}]"),
                    "Stopping all processes with SIGTERM (replaced by the prebooted dyno)",
                );
            }
        }
        if self.restart_at.is_some_and(|at| now >= at) {
            self.restart_at = None;
            self.restart_due = true;
        }
        let mut ended = Vec::new();
        for r in &mut self.releases {
            if let Some((at, outcome)) = r.phase_ends.filter(|(at, _)| now >= *at) {
                let _ = at;
                r.phase_ends = None;
                r.status = match outcome {
                    ReleaseOutcome::Succeeded => "succeeded",
                    ReleaseOutcome::Failed => "failed",
                };
                ended.push((r.version, outcome));
            }
        }
        for (version, outcome) in ended {
            let source = format!("heroku[release.{version}]");
            match outcome {
                ReleaseOutcome::Succeeded => {
                    self.log(&source, "Process exited with status 0");
                    self.log("app[api]", &format!("Release v{version} command succeeded"));
                    self.restart_due = true;
                }
                ReleaseOutcome::Failed => {
                    self.log(&source, "Process exited with status 1");
                    self.log("app[api]", &format!("Release v{version} command failed"));
                }
            }
        }
    }

    /// Whether anything of the app changes as time passes: a boot, a preboot's switch, a
    /// restart or a release phase under way.
    fn awaits_time(&self) -> bool {
        self.booting_until.is_some()
            || self.prebooting_from.is_some()
            || self.restart_at.is_some()
            || self.releases.iter().any(|r| r.phase_ends.is_some())
    }

    /// The newest release whose release phase succeeded (or that had none).
    pub(super) fn latest_succeeded(&self) -> Option<&HRelease> {
        self.releases.iter().rev().find(|r| r.status == "succeeded")
    }

    /// The config the app's processes read at a (re)start: its config vars, unless its newest
    /// release has not (yet) succeeded, when that of the release the dynos run.
    fn running_config(&self) -> &BTreeMap<String, String> {
        match self.releases.last() {
            Some(last) if last.status != "succeeded" => self
                .releases
                .iter()
                .find(|r| r.version == self.running.1)
                .map_or(&self.config, |r| &r.config),
            _ => &self.config,
        }
    }

    /// Whether the dynos are still starting.
    pub(super) fn booting(&self) -> bool {
        self.booting_until
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Appends a logplex-style line: `<timestamp> <source>[<dyno>]: <message>`.
    fn log(&mut self, source_dyno: &str, message: &str) {
        self.logs
            .push(format!("{} {source_dyno}: {message}", ts::log()));
        self.log_times.push(std::time::Instant::now());
        self.logged += 1;
        if self.logs.len() > LOG_KEEP {
            let extra = self.logs.len() - LOG_KEEP;
            self.logs.drain(..extra);
            self.log_times.drain(..extra);
        }
    }

    /// The dynos of its formation: not its one-offs (`run.N`, `scheduler.N`, `release.N`),
    /// which keep the release they started on until they exit; no restart moves them.
    pub(super) fn formation_dynos(&self) -> impl Iterator<Item = &String> {
        self.dynos.iter().filter(|d| !is_one_off(d))
    }

    /// Whether its formation runs any dyno (an app scaled to zero runs none).
    fn runs_any(&self) -> bool {
        self.formation_dynos().next().is_some()
    }

    fn web_dyno(&self) -> String {
        self.formation_dynos()
            .next()
            .cloned()
            .unwrap_or_else(|| "web.1".into())
    }
}

pub(super) struct LogSession {
    pub(super) app: String,
    /// A Fir app's session: only the lines logged after the app's `logged`-th, as a stream
    /// that does not end (no history; `lines` is ignored). A count, not an index into
    /// `logs`, so trimming the log does not skip new lines.
    pub(super) from: Option<usize>,
    /// `tail: true`: the last `lines`, then every line as it is logged, until the session's
    /// hour is up (what `heroku logs --tail` reads).
    pub(super) tail: bool,
    /// Served as server-sent events (asked with `version=3.sdk`, as the Heroku CLI does).
    pub(super) sse: bool,
    pub(super) lines: usize,
    pub(super) dyno: Option<String>,
    pub(super) source: Option<String>,
}

pub(crate) struct HerokuState {
    /// The API key it accepts.
    pub(crate) api_key: String,
    /// The key's OAuth scopes.
    pub(super) scopes: Vec<String>,
    /// The key's authorization (what `GET /oauth/authorizations` lists).
    pub(super) authorization_id: String,
    created_at: String,
    /// Fixed once the scenario is read: `index` finds one by name or id.
    apps: Vec<HApp>,
    /// Each app's place in `apps`, by id and by name: a lookup per request and per app at
    /// every tick was a linear scan, quadratic in a 1,000-app world (3 s of the simulator's
    /// CPU in a 1,000-app fan-out).
    index: HashMap<String, usize>,
    pub(super) sessions: HashMap<String, LogSession>,
    pub(super) user_email: String,
    pub(super) user_id: String,
    pub(super) pool: crate::ratelimit::Pool,
    /// The largest page a ranged list answers.
    pub(super) page_size: usize,
    /// How long a tail session's stream stays open.
    pub(super) log_stream: std::time::Duration,
}

impl HerokuState {
    pub(super) fn from_scenario(
        s: &HerokuScenario,
        tokens_of: TokensOf<'_>,
    ) -> Result<Self, SandboxError> {
        let user_id = uuid::Uuid::new_v4().to_string();
        let mut apps = Vec::new();
        for spec in &s.apps {
            if spec.name.is_empty() {
                return Err(SandboxError::Scenario {
                    message: "a heroku app needs a name".into(),
                });
            }
            if !matches!(spec.generation.as_str(), "cedar" | "fir") {
                return Err(SandboxError::Scenario {
                    message: format!(
                        "heroku app '{}': generation must be \"cedar\" or \"fir\"",
                        spec.name
                    ),
                });
            }
            if spec.preboot_window_ms > 600_000 {
                return Err(SandboxError::Scenario {
                    message: format!(
                        "heroku app '{}': preboot_window_ms is at most 600000 (Heroku's longest boot timeout, 180 s, plus 2 minutes is 300 s)",
                        spec.name
                    ),
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
                status: "succeeded",
                phase_ends: None,
            };
            let running = (release.id.clone(), 1);
            let mut app = HApp {
                id: uuid::Uuid::new_v4().to_string(),
                name: spec.name.clone(),
                config,
                releases: vec![release],
                restarts: 0,
                dynos: spec.dynos.clone(),
                logs: Vec::new(),
                log_times: Vec::new(),
                logged: 0,
                log_delay: std::time::Duration::from_millis(spec.log_delay_ms),
                client_401s: spec.client_401s,
                created_at: ts::seconds(),
                generation: spec.generation.clone(),
                boot: std::time::Duration::from_millis(spec.boot_ms),
                booting_until: None,
                preboot: spec.preboot,
                preboot_window: std::time::Duration::from_millis(spec.preboot_window_ms),
                switch_at: None,
                dynos_changed_at: ts::seconds(),
                dynos_created_at: ts::seconds(),
                restarted_wall: time::OffsetDateTime::now_utc(),
                release_phase: spec.release_phase.clone(),
                running,
                prebooting_from: None,
                restart_due: false,
                restart_delay: std::time::Duration::from_millis(spec.restart_delay_ms),
                restart_at: None,
            };
            if !app.dynos.is_empty() {
                let dyno = app.web_dyno();
                app.log(
                    &format!("heroku[{dyno}]"),
                    "State changed from starting to up",
                );
            }
            apps.push(app);
        }
        // The first app whose name or id it is, as the scan it replaces found.
        let mut index = HashMap::new();
        for (i, a) in apps.iter().enumerate() {
            index.entry(a.name.clone()).or_insert(i);
            index.entry(a.id.clone()).or_insert(i);
        }
        Ok(HerokuState {
            index,
            api_key: s
                .api_key
                .clone()
                .unwrap_or_else(|| format!("HRKU-{}", uuid::Uuid::new_v4())),
            scopes: s.scopes.clone(),
            authorization_id: uuid::Uuid::new_v4().to_string(),
            created_at: ts::seconds(),
            apps,
            sessions: HashMap::new(),
            user_email: s.user_email.clone(),
            user_id,
            page_size: s.page_size.map_or(1000, |n| (n as usize).clamp(1, 1000)),
            log_stream: std::time::Duration::from_millis(s.log_stream_ms.unwrap_or(3_600_000)),
            pool: crate::ratelimit::Pool::new(
                s.rate_limit.capacity,
                s.rate_limit.per_minute / 60.0,
            ),
        })
    }

    /// The longest preboot window of its preboot apps, in whole seconds rounded up (Heroku's
    /// default, 180, without one).
    pub(super) fn preboot_window_secs(&self) -> u64 {
        self.apps
            .iter()
            .filter(|a| a.preboot)
            .map(|a| a.preboot_window.as_millis().div_ceil(1000) as u64)
            .max()
            .unwrap_or(180)
    }

    /// Whether the key's scopes grant `need` (`global` grants everything; a write scope its
    /// read; a `-protected` scope the plain one).
    pub(super) fn grants(&self, need: &str) -> bool {
        let granted: &[&str] = match need {
            "read" => &[
                "global",
                "read",
                "write",
                "read-protected",
                "write-protected",
            ],
            "write" => &["global", "write", "write-protected"],
            "read-protected" => &["global", "read-protected", "write-protected"],
            "write-protected" => &["global", "write-protected"],
            _ => &["global"],
        };
        self.scopes.iter().any(|s| granted.contains(&s.as_str()))
    }

    /// The key's OAuth authorization, as `GET /oauth/authorizations` lists it.
    pub(super) fn authorization(&self) -> Value {
        json!({
            "id": self.authorization_id,
            "description": "runbook sandbox key",
            "scope": self.scopes,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "access_token": {"id": uuid::Uuid::new_v4().to_string(), "token": self.api_key, "expires_in": null},
            "client": null,
            "grant": null,
            "refresh_token": null,
            "session": null,
            "user": {"id": self.user_id, "email": self.user_email, "full_name": "Sandbox Operator"},
        })
    }

    pub(super) fn app_mut(&mut self, name: &str) -> Option<&mut HApp> {
        let i = *self.index.get(name)?;
        self.apps.get_mut(i)
    }

    /// Every app's name, in scenario order.
    pub(super) fn app_names(&self) -> Vec<String> {
        self.apps.iter().map(|a| a.name.clone()).collect()
    }

    pub(super) fn app(&self, name: &str) -> Option<&HApp> {
        let i = *self.index.get(name)?;
        self.apps.get(i)
    }

    pub(super) fn release_json(&self, app: &HApp, r: &HRelease) -> Value {
        // The current release is the newest that succeeded: a pending or failed one is not.
        let current = app.latest_succeeded().map(|l| l.version) == Some(r.version);
        json!({
            "addon_plan_names": [],
            "artifacts": [],
            "app": {"id": app.id, "name": app.name},
            "created_at": r.created_at,
            "description": r.description,
            "id": r.id,
            "updated_at": r.created_at,
            "slug": null,
            "status": r.status,
            "user": {"id": self.user_id, "email": self.user_email},
            "version": r.version,
            "current": current,
            "output_stream_url": null,
            "eligible_for_rollback": !current && r.status == "succeeded",
        })
    }

    /// Whether session `id` streams: a tail (`tail: true`) or a Fir app's (it keeps no
    /// history, so its sessions always stream).
    pub(super) fn session_streams(&self, id: &str) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|s| s.tail || s.from.is_some())
    }

    /// The lines of log session `id`'s app, filtered by the session's source and dyno, and
    /// how many lines the app had logged by then (where the next read starts). `after`:
    /// only the lines logged after that many; `None` is the session's first read (its last
    /// `lines`, or a Fir session's since it opened).
    pub(super) fn session_lines(
        &mut self,
        id: &str,
        after: Option<usize>,
    ) -> Option<(Vec<String>, usize)> {
        let app_name = self.sessions.get(id)?.app.clone();
        if let Some(a) = self.app_mut(&app_name) {
            a.settle();
        }
        let session = self.sessions.get(id)?;
        let app = self.app(&session.app)?;
        // A line is `<timestamp> <source>[<dyno>]: <message>`.
        fn tag(line: &str) -> Option<&str> {
            line.split(' ').nth(1)
        }
        let from = after.or(session.from);
        // Lines still on their way (the log delivery's lag) reach no session yet.
        let now = std::time::Instant::now();
        let due = app
            .log_times
            .iter()
            .rposition(|t| *t + app.log_delay <= now)
            .map_or(0, |i| i + 1);
        let lines: Vec<&String> = app.logs[..due]
            .iter()
            // The lines trimmed off the front were logged before any the session may show.
            .skip(from.map_or(0, |from| from.saturating_sub(app.logged - app.logs.len())))
            .filter(|l| match &session.source {
                Some(src) => tag(l).is_some_and(|t| t.starts_with(&format!("{src}["))),
                None => true,
            })
            .filter(|l| match &session.dyno {
                Some(d) => tag(l).is_some_and(|t| t.contains(&format!("[{d}]"))),
                None => true,
            })
            .collect();
        let start = if from.is_some() {
            0
        } else {
            lines.len().saturating_sub(session.lines)
        };
        Some((
            lines[start..].iter().map(|l| l.to_string()).collect(),
            app.logged - (app.logs.len() - due),
        ))
    }

    /// Counts and logs a restart of every dyno of `app`; its name, if it exists.
    fn restart(&mut self, app: &str) -> Option<String> {
        let a = self.app_mut(app)?;
        a.settle();
        a.restarts += 1;
        // A delayed restart still to come is this one.
        a.restart_at = None;
        for dyno in a.formation_dynos().cloned().collect::<Vec<_>>() {
            let tag = format!("heroku[{dyno}]");
            a.log(&tag, "Restarting");
            a.log(&tag, "State changed from up to starting");
            a.log(&tag, "Stopping all processes with SIGTERM");
            a.log(&tag, "Process exited with status 143");
        }
        let now = std::time::Instant::now();
        // Scaled to zero: nothing to boot, nothing serving.
        let runs = a.runs_any();
        a.booting_until = runs.then(|| now + a.boot);
        a.restarted_wall = time::OffsetDateTime::now_utc();
        a.dynos_changed_at = ts::seconds_at(a.restarted_wall);
        a.dynos_created_at = a.dynos_changed_at.clone();
        // Preboot is for web dynos: an app without one restarts as any other.
        let prebooted = a.preboot && a.formation_dynos().any(|d| d.starts_with("web"));
        let target = a
            .latest_succeeded()
            .map(|r| (r.id.clone(), r.version))
            .unwrap_or_else(|| a.running.clone());
        // With preboot the old dynos keep serving their release until traffic moves, the
        // window after this change (a later change starts the window again).
        a.prebooting_from = match &a.prebooting_from {
            Some(old) if prebooted => Some(old.clone()),
            _ if prebooted => Some(a.running.clone()),
            _ => None,
        };
        a.switch_at = prebooted.then(|| now + a.preboot_window.max(a.boot));
        a.running = target;
        // A boot of no time is up at once.
        a.settle();
        Some(a.name.clone())
    }

    /// Merges `changes` into `app`'s config vars (`null` deletes); a real change makes a
    /// release. The config after the change, and the app's name if it changed (then it needs
    /// a restart); `None` without such an app.
    pub(super) fn patch_config(
        &mut self,
        app: &str,
        changes: Map<String, Value>,
    ) -> Option<(BTreeMap<String, String>, Option<String>)> {
        let email = self.user_email.clone();
        let a = self.app_mut(app)?;
        let mut set = Vec::new();
        let mut removed = Vec::new();
        for (k, v) in changes {
            match v.as_str() {
                Some(val) => {
                    // Heroku releases (and restarts) on every set, even of the value a var
                    // already holds: a retried propagate restarts the app again.
                    set.push(k.clone());
                    a.config.insert(k, val.to_string());
                }
                None => {
                    if a.config.remove(&k).is_some() {
                        removed.push(k);
                    }
                }
            }
        }
        if set.is_empty() && removed.is_empty() {
            return Some((a.config.clone(), None));
        }
        let mut parts = Vec::new();
        if !set.is_empty() {
            parts.push(format!("Set {} config vars", set.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("Remove {} config vars", removed.join(", ")));
        }
        let version = a.releases.last().map_or(1, |r| r.version + 1);
        let phase = a.release_phase.as_ref().map(|p| {
            (
                std::time::Instant::now() + std::time::Duration::from_millis(p.duration_ms),
                p.outcome,
            )
        });
        a.releases.push(HRelease {
            id: uuid::Uuid::new_v4().to_string(),
            version,
            description: parts.join("; "),
            created_at: ts::seconds(),
            config: a.config.clone(),
            status: if phase.is_some() {
                "pending"
            } else {
                "succeeded"
            },
            phase_ends: phase,
        });
        a.log("app[api]", &format!("{} by user {email}", parts.join("; ")));
        a.log(
            "app[api]",
            &format!("Release v{version} created by user {email}"),
        );
        if phase.is_some() {
            a.log(
                &format!("heroku[release.{version}]"),
                "Starting process with command `release`",
            );
            // The app restarts when (if) the release command succeeds.
            a.settle();
            return Some((a.config.clone(), None));
        }
        if !a.restart_delay.is_zero() {
            // Restarted later, at a tick: the dynos stay up on the release before meanwhile.
            a.restart_at = Some(std::time::Instant::now() + a.restart_delay);
            return Some((a.config.clone(), None));
        }
        Some((a.config.clone(), Some(a.name.clone())))
    }

    /// Sets a config var without the release and restart a real change makes.
    #[cfg(any(test, feature = "test-api"))]
    pub(super) fn set_config_without_restart(&mut self, app: &str, key: &str, value: &str) {
        if let Some(a) = self.app_mut(app) {
            a.config.insert(key.into(), value.into());
        }
    }

    pub(super) fn to_json(&self) -> Value {
        let apps: Map<String, Value> = self
            .apps
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    json!({
                        "config_vars": a.config,
                        "restarts": a.restarts,
                        "releases": a.releases.iter().map(|r| json!({"version": r.version, "description": r.description, "status": r.status})).collect::<Vec<_>>(),
                        "running_release": a.running.1,
                        "logs": a.logs,
                    }),
                )
            })
            .collect();
        json!({"apps": apps, "rate_limit": {"refused": self.pool.refused}})
    }
}

/// Heroku's reaction to time passing: a release phase that succeeded restarts its app.
pub(super) fn on_event(w: &mut World, event: &Event<'_>) {
    if !matches!(event, Event::Tick { .. }) {
        return;
    }
    let due: Vec<String> = w
        .get_mut::<HerokuState>()
        .map(|h| {
            h.apps
                .iter_mut()
                .filter_map(|a| {
                    a.settle();
                    if a.client_401s && a.runs_any() {
                        let line = format!(
                            "at=info method=POST path=\"/api/login\" host={}.herokuapp.com dyno={} connect=0ms service=3ms status=401 bytes=64 protocol=https",
                            a.name,
                            a.web_dyno()
                        );
                        a.log("heroku[router]", &line);
                    }
                    std::mem::take(&mut a.restart_due).then(|| a.name.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    for app in due {
        restart(w, &app);
    }
}

/// Restarts every dyno of `app` and announces it, so what runs there re-reads its config.
pub(super) fn restart(w: &mut World, app: &str) {
    let Some(name) = w.get_mut::<HerokuState>().and_then(|h| h.restart(app)) else {
        return;
    };
    w.emit(&Event::Restarted { app: &name });
}

pub(super) fn find_release<'a>(a: &'a HApp, id: &str) -> Option<&'a HRelease> {
    a.releases
        .iter()
        .find(|r| r.id == id || id.parse::<u64>().ok() == Some(r.version))
}

/// Heroku is the platform the sandbox's apps run on.
impl Platform for HerokuState {
    fn apps(&self) -> Vec<String> {
        self.apps.iter().map(|a| a.name.clone()).collect()
    }

    fn config_var(&self, app: &str, key: &str) -> Option<String> {
        self.app(app)?.running_config().get(key).cloned()
    }

    fn log(&mut self, app: &str, source: &str, message: &str) {
        if let Some(a) = self.app_mut(app) {
            a.settle();
            a.log(source, message);
        }
    }

    fn serving(&mut self, app: &str) -> bool {
        self.app_mut(app).is_some_and(|a| {
            a.settle();
            a.runs_any() && (!a.booting() || a.prebooting_from.is_some())
        })
    }

    fn runs(&self, app: &str) -> bool {
        self.app(app).is_some_and(|a| a.runs_any())
    }

    fn old_dynos_serve(&mut self, app: &str) -> bool {
        self.app_mut(app).is_some_and(|a| {
            a.settle();
            a.prebooting_from.is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox exports the longest preboot window of its preboot apps, rounded up to
    /// whole seconds (Heroku's 180 without one); a window the engine would refuse (over 600 s)
    /// is refused in the scenario, naming the app.
    #[test]
    fn the_exported_preboot_window_is_the_longest_of_the_preboot_apps() {
        let tokens = |_: &str| Some(vec!["pm-0001".into()]);
        let mut scenario = crate::Scenario::default();
        let h = HerokuState::from_scenario(&scenario.heroku, &tokens).unwrap();
        assert_eq!(h.preboot_window_secs(), 180);
        scenario.heroku.apps[0].preboot = true;
        scenario.heroku.apps[0].preboot_window_ms = 8_500;
        scenario.heroku.apps[1].preboot_window_ms = 500_000;
        let h = HerokuState::from_scenario(&scenario.heroku, &tokens).unwrap();
        assert_eq!(h.preboot_window_secs(), 9);
        scenario.heroku.apps[0].preboot_window_ms = 600_001;
        let Err(e) = HerokuState::from_scenario(&scenario.heroku, &tokens) else {
            panic!("a window over 600 s is refused");
        };
        assert!(
            e.to_string()
                .contains("preboot_window_ms is at most 600000"),
            "{e}"
        );
    }

    /// An app is found by its name and by its id, each its own, in a world of many (the
    /// lookup is an index since a 1,000-app fan-out spent 3 s of CPU scanning the list).
    #[test]
    fn every_app_is_found_by_name_and_by_id() {
        let mut scenario = crate::Scenario::default();
        let template = scenario.heroku.apps[0].clone();
        scenario.heroku.apps = (0..300)
            .map(|i| crate::scenario::AppSpec {
                name: format!("app-{i:03}"),
                ..template.clone()
            })
            .collect();
        let mut h = HerokuState::from_scenario(&scenario.heroku, &|_| Some(vec!["pm-0001".into()]))
            .unwrap();
        let names = h.app_names();
        assert_eq!(names.len(), 300);
        for name in &names {
            let id = h.app(name).unwrap().id.clone();
            assert_eq!(&h.app(&id).unwrap().name, name);
            assert_eq!(&h.app_mut(&id).unwrap().name, name);
        }
        assert!(h.app("app-300").is_none());
        assert!(h.app_mut("").is_none());
    }

    /// A Fir session opened on a full log shows every line logged after it: before, it kept
    /// an index into the log, and trimming the log's front moved the lines past the index.
    #[test]
    fn a_fir_session_on_a_full_log_shows_what_follows_it() {
        let scenario = crate::Scenario::default();
        let mut h = HerokuState::from_scenario(&scenario.heroku, &|_| Some(vec!["pm-0001".into()]))
            .unwrap();
        let name = h.app_names()[0].clone();
        let app = h.app_mut(&name).unwrap();
        app.generation = "fir".into();
        for i in 0..LOG_KEEP + 10 {
            app.log("app[web.1]", &format!("old {i}"));
        }
        let from = Some(app.logged);
        h.sessions.insert(
            "s".into(),
            LogSession {
                app: name.clone(),
                from,
                tail: false,
                sse: false,
                lines: 100,
                dyno: None,
                source: None,
            },
        );
        let app = h.app_mut(&name).unwrap();
        app.log("app[web.1]", "new 1");
        app.log("app[web.1]", "new 2");
        let (lines, _) = h.session_lines("s", None).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("app[web.1]: new 1"), "{lines:?}");
        assert!(lines[1].ends_with("app[web.1]: new 2"), "{lines:?}");
    }
}
