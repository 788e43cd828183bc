//! `heroku::`: config vars (values are `Secret`s), restarts, releases and logs. Functions
//! that take several apps call them concurrently and report per app.

use super::placeholder::Placeholder;
use super::vendor_call::{fan_out, is_dry_run_secret, per_target, targets, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::value::{self, throw};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use runbook_secret::{Secret, Source};
use runbook_vendors::heroku::ConfigValue;
use runbook_vendors::Vendor;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

fn config(h: &RunContext, app: &str) -> R<Dynamic> {
    h.require_step("heroku::config")?;
    let v = h.vendors()?;
    let app_name = app.to_string();
    let vars = h.block(&format!("heroku GET /apps/{app}/config-vars"), async move {
        v.heroku().config_vars(&app_name).await
    })?;
    Ok(config_map(h, app, &vars).into())
}

/// `call` on every app at once (bounded and paced by `Vendors::fan_out`), shown as one call
/// `heroku VERB /apps/{a,b}/WHAT`; each app's outcome, in the apps' order.
fn each_app<T, F, Fut>(
    h: &RunContext,
    apps: &[String],
    what: &str,
    call: F,
) -> R<Vec<(String, Result<T, runbook_vendors::VendorError>)>>
where
    T: Send + 'static,
    F: Fn(runbook_vendors::Vendors, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, runbook_vendors::VendorError>> + Send + 'static,
{
    let v = h.vendors()?;
    let list = apps.to_vec();
    let label = format!(
        "heroku {}",
        what.replace("{}", &format!("{{{}}}", apps.join(",")))
    );
    h.read(&label, async move { Ok(fan_out(&v, &list, call).await) })
}

/// Several apps' config vars, read concurrently: #{app: config}. Fails on the first app
/// whose read failed, naming it (a precheck cannot judge an app it could not read).
fn configs(h: &RunContext, apps: Dynamic) -> R<Dynamic> {
    h.require_step("heroku::configs")?;
    let apps = targets(&apps, "heroku::configs apps")?;
    let results = each_app(h, &apps, "GET /apps/{}/config-vars", |v, app| async move {
        v.heroku().config_vars(&app).await
    })?;
    let mut out = Map::new();
    for (app, r) in results {
        let vars = r.map_err(|e| super::vendor_call::vendor_error(&e))?;
        out.insert(app.as_str().into(), config_map(h, &app, &vars).into());
    }
    Ok(out.into())
}

/// Config vars as a script sees them. Clear settings come back as text (a region, an
/// account SID), everything else as a Secret: by the var's name and the value's shape, or
/// the runbook's `masking`.
fn config_map(h: &RunContext, app: &str, vars: &runbook_vendors::heroku::ConfigVars) -> Map {
    let mut m = Map::new();
    for (k, val) in vars.iter() {
        let source = Source::Vendor {
            what: format!("Heroku config var {k} of {app}"),
        };
        let v = if h.policy().masking.is_plain(k, val) {
            Dynamic::from(val.to_string())
        } else if h.policy().masking.is_secret(k, val) {
            Dynamic::from(Secret::new(val.to_string(), source))
        } else {
            // Not clearly either: opaque (masked), without masking its text everywhere.
            Dynamic::from(Secret::from_bulk(k, val.to_string(), source))
        };
        m.insert(k.to_string().into(), v);
    }
    m
}

fn changes_from(vars: &Map) -> R<BTreeMap<String, Option<ConfigValue>>> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        let value = if v.is_unit() {
            None
        } else if let Some(s) = v.read_lock::<Secret>() {
            Some(ConfigValue::Secret(s.clone()))
        } else if v.is_string() {
            Some(ConfigValue::Plain(value::plain_string(
                &v.to_string(),
                &format!("config var {k}"),
            )?))
        } else {
            return Err(throw(
                "usage",
                format!("config var {k} must be a string, a Secret or () to remove it"),
                None,
            ));
        };
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

fn set_config(h: &RunContext, apps: Dynamic, vars: Map) -> R<Dynamic> {
    let apps = targets(&apps, "heroku::set_config apps")?;
    let changes = changes_from(&vars)?;
    let said_changes = changes.clone();
    let detail = serde_json::json!({
        "apps": apps,
        "vars": changes.iter().map(|(k, v)| (k.clone(), match v {
            None => serde_json::Value::Null,
            Some(ConfigValue::Secret(s)) => s.fingerprint().into(),
            Some(ConfigValue::Plain(p)) => p.clone().into(),
        })).collect::<serde_json::Map<_, _>>(),
    });
    let target = format!("PATCH /apps/{{{}}}/config-vars", apps.join(","));
    let dry_run_value = changes
        .values()
        .flatten()
        .any(|c| matches!(c, ConfigValue::Secret(s) if is_dry_run_secret(s)));
    if h.dry_run() || dry_run_value {
        return h
            .writes()
            .mutate("heroku::set_config", Effect::Write, &target, detail, || {
                Ok(Placeholder::of("heroku::set_config"))
            });
    }
    // Each app is one write; the change is the same for all of them.
    let change = serde_json::json!({ "vars": detail["vars"] });
    let results =
        h.writes()
            .mutate_each("heroku::set_config", Effect::Write, &apps, change, |todo| {
                let v = h.vendors()?;
                let label = format!("heroku PATCH config-vars on {} app(s)", todo.len());
                h.block(&label, async move {
                    Ok(fan_out(&v, &todo, |v, app| {
                        let changes = changes.clone();
                        async move {
                            v.heroku()
                                .update_config_vars(&app, &changes)
                                .await
                                .map(|_| ())
                        }
                    })
                    .await)
                })
            })?;
    // Say what changed, values masked: in an undo, what was put back.
    let verb = if h.scope().in_undo() {
        "restored to"
    } else {
        "set to"
    };
    let said: Vec<String> = said_changes
        .iter()
        .map(|(k, v)| match v {
            None => format!("{k} removed"),
            Some(ConfigValue::Secret(s)) => format!("{k} {verb} {}", s.masked()),
            Some(ConfigValue::Plain(_)) => format!("{k} {verb} a plain value"),
        })
        .collect();
    for (app, r) in &results {
        if let Some(Ok(())) = r {
            h.say().progress(format!(
                "    {app}: {} (new release, dynos restart)",
                said.join(", ")
            ));
        }
    }
    per_target("heroku::set_config", results, |_| Map::new()).map(Dynamic::from)
}

fn restart(h: &RunContext, apps: Dynamic) -> R<Dynamic> {
    let apps = targets(&apps, "heroku::restart apps")?;
    let detail = serde_json::json!({ "apps": apps });
    let target = format!("DELETE /apps/{{{}}}/dynos", apps.join(","));
    if h.dry_run() {
        return h
            .writes()
            .mutate("heroku::restart", Effect::Write, &target, detail, || {
                Ok(Placeholder::of("heroku::restart"))
            });
    }
    let results = h.writes().mutate_each(
        "heroku::restart",
        Effect::Write,
        &apps,
        serde_json::json!({}),
        |todo| {
            let v = h.vendors()?;
            let label = format!("heroku restart {} app(s)", todo.len());
            h.block(&label, async move {
                Ok(fan_out(&v, &todo, |v, app| async move {
                    v.heroku().restart_all(&app).await
                })
                .await)
            })
        },
    )?;
    per_target("heroku::restart", results, |_| Map::new()).map(Dynamic::from)
}

/// Polls each app's dynos until every one is `up`: a restart's 202 is not the end of the
/// boot. On an app with preboot it then waits for the traffic to move: Heroku lists only the
/// new dynos while the old ones, on the old config, keep serving for the preboot window.
/// Fails naming the apps still starting (or crashed) when `timeout` runs out.
fn wait_up(h: &RunContext, apps: Dynamic, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::wait_up")?;
    let apps = targets(&apps, "heroku::wait_up apps")?;
    value::check_keys(&opts, WAIT_UP_OPTIONS, "heroku::wait_up")?;
    let seconds = |key: &str, default: i64, low: i64| -> R<i64> {
        match opts.get(key) {
            None => Ok(default),
            Some(t) => t
                .as_int()
                .ok()
                .filter(|t| (low..=3600).contains(t))
                .ok_or_else(|| {
                    throw(
                        "usage",
                        format!("heroku::wait_up: {key} is a whole number of seconds between {low} and 3600"),
                        None,
                    )
                }),
        }
    };
    let timeout = seconds("timeout", 120, 1)?;
    // Heroku moves the traffic the app's boot timeout plus 2 minutes after a change: 180 s
    // with the default boot timeout (Heroku changelog, 2017-04-19).
    let preboot_window = std::time::Duration::from_secs(seconds("preboot_window", 180, 0)? as u64);
    // The release each app's dynos must run (at least): a dyno up on an older one is not
    // the new config running.
    let mut releases: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    if let Some(r) = opts.get("releases") {
        let usage = || {
            throw(
                "usage",
                "heroku::wait_up: releases is a map of app name to release version, e.g. #{ \"my-app\": 42 }",
                None,
            )
        };
        let map = r.read_lock::<Map>().ok_or_else(usage)?;
        for (app, v) in map.iter() {
            let v = v.as_int().ok().filter(|v| *v > 0).ok_or_else(usage)?;
            if !apps.iter().any(|a| a.as_str() == app.as_str()) {
                return Err(throw(
                    "usage",
                    format!("heroku::wait_up: releases names '{app}', which is not one of the apps waited for"),
                    Some("name each app as it is given in the apps list".into()),
                ));
            }
            releases.insert(app.to_string(), v as u64);
        }
    }
    if h.dry_run() {
        h.say().progress(format!(
            "    [dry-run] would wait for {} app(s) to be up (and, with preboot, for the traffic to move)",
            apps.len()
        ));
        return Ok(Dynamic::UNIT);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout as u64);
    // Dynos already said to run an unnamed release (said once each).
    let mut unnamed = std::collections::HashSet::new();
    // Whether each app has preboot, read beside its first poll.
    let mut preboot: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    // A preboot app whose new dynos are up: when its traffic has moved (this machine's clock).
    let mut switched_at: std::collections::HashMap<String, std::time::Instant> =
        std::collections::HashMap::new();
    let mut pause = std::time::Duration::from_millis(100);
    let mut pending: Vec<String> = apps.clone();
    loop {
        let mut still = Vec::new();
        // Every app still pending at once: the wait is as long as the slowest app's boot,
        // not the sum of the polls.
        let known: std::collections::HashSet<String> = preboot.keys().cloned().collect();
        let polled = each_app(h, &pending, "GET /apps/{}/dynos", move |v, app| {
            let read_feature = !known.contains(&app);
            async move {
                let heroku = v.heroku();
                if read_feature {
                    let (dynos, feature) =
                        tokio::try_join!(heroku.dynos(&app), heroku.preboot(&app))?;
                    Ok((dynos, Some(feature)))
                } else {
                    Ok((heroku.dynos(&app).await?, None))
                }
            }
        })?;
        // The earliest moment a preboot app's traffic moves, when every app left waits only
        // for that.
        let mut next_switch: Option<std::time::Instant> = None;
        for (app, answer) in polled {
            let (dynos, feature) = answer.map_err(|e| super::vendor_call::vendor_error(&e))?;
            if let Some(f) = feature {
                preboot.insert(app.clone(), f);
            }
            let wanted = releases.get(&app).copied();
            let not_up: Vec<String> = dynos
                .list
                .iter()
                .filter_map(|d| match dyno_waits(d, wanted) {
                    DynoWait::Ready => None,
                    DynoWait::Unnamed => {
                        if unnamed.insert(format!("{app} {}", d.name)) {
                            h.say().progress(format!(
                                "    {app}: {} does not say which release it runs; counted as up",
                                d.name
                            ));
                        }
                        None
                    }
                    DynoWait::Waits(why) => Some(why),
                })
                .collect();
            if dynos.list.is_empty() || !not_up.is_empty() {
                let why = if not_up.is_empty() {
                    "no dynos".into()
                } else {
                    not_up.join(", ")
                };
                switched_at.remove(&app);
                still.push((app, why));
                continue;
            }
            let has_web = dynos.list.iter().any(|d| kind_of(d) == "web");
            if !preboot.get(&app).copied().unwrap_or(false) || preboot_window.is_zero() || !has_web
            {
                continue;
            }
            let at = *switched_at.entry(app.clone()).or_insert_with(|| {
                let left = preboot_left(&dynos, preboot_window);
                h.say().progress(format!(
                    "    {app}: preboot is on: its old web dynos keep the traffic, on the old config, until about {}s after the change; waiting {}s more",
                    preboot_window.as_secs(),
                    left.as_secs()
                ));
                std::time::Instant::now() + left
            });
            if std::time::Instant::now() < at {
                next_switch = Some(next_switch.map_or(at, |n: std::time::Instant| n.min(at)));
                let left = at.saturating_duration_since(std::time::Instant::now());
                still.push((
                    app,
                    format!(
                        "preboot: the old web dynos keep the traffic for about {}s more",
                        left.as_secs().max(1)
                    ),
                ));
            }
        }
        if still.is_empty() {
            return Ok(Dynamic::UNIT);
        }
        pending = still.iter().map(|(app, _)| app.clone()).collect();
        // Only preboot windows left: nothing to poll until the first one ends.
        let only_switching = still.iter().all(|(_, why)| why.starts_with("preboot:"));
        let sleep = match next_switch.filter(|_| only_switching) {
            Some(at) => at.saturating_duration_since(std::time::Instant::now()),
            None => pause,
        };
        // The preboot window is waited on top of `timeout`, which is for the boot.
        if !only_switching && std::time::Instant::now() + sleep > deadline {
            return Err(throw(
                "vendor",
                format!(
                    "heroku::wait_up: not up after {timeout}s: {}",
                    still
                        .iter()
                        .map(|(app, why)| format!("{app} ({why})"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Some(if still.iter().any(|(_, why)| why.contains(" not v")) {
                    "a dyno on an older release still serves the old config: check `heroku releases -a APP` and `heroku ps -a APP`; retry the step once it runs the new release".into()
                } else {
                    "check the app's logs (heroku logs -a APP); a crashed dyno needs a fix before the rotation can finish".into()
                }),
            ));
        }
        super::core::sleep(sleep.as_secs_f64())?;
        if !only_switching {
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }
}

/// How much of the preboot window is left, on Heroku's clock: from when the newest web dyno
/// came up (later than the change Heroku counts from, so the wait errs long) to Heroku's
/// answer, plus 2 s for the timestamps' whole seconds. The whole window when Heroku does not
/// say.
fn preboot_left(
    dynos: &runbook_vendors::heroku::Dynos,
    window: std::time::Duration,
) -> std::time::Duration {
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    };
    let up_since = dynos
        .list
        .iter()
        .filter(|d| kind_of(d) == "web")
        .map(|d| d.updated_at.as_deref().and_then(parse))
        .collect::<Option<Vec<_>>>()
        .and_then(|times| times.into_iter().max());
    let margin = std::time::Duration::from_secs(2);
    match (up_since, dynos.answered_at) {
        (Some(up), Some(now)) => {
            let age = std::time::Duration::try_from(now - up).unwrap_or_default();
            (window + margin).saturating_sub(age)
        }
        _ => window + margin,
    }
}

/// A dyno's process type: its `type`, or the name's prefix (`web.1`).
fn kind_of(d: &runbook_vendors::heroku::Dyno) -> &str {
    d.kind
        .as_deref()
        .unwrap_or_else(|| d.name.split('.').next().unwrap_or(""))
}

/// Where one dyno stands for `wait_up`.
#[derive(Debug, PartialEq)]
enum DynoWait {
    Ready,
    /// Up, but Heroku does not say on which release: counted (and said).
    Unnamed,
    /// Not yet: why, as `web.1 starting` or `web.1 up on v3, not v4 yet`.
    Waits(String),
}

/// Whether `d` is up, and (when `wanted` names a release) on that release or a later one.
/// A one-off (a console, a scheduled job, a release phase) keeps the release it started on
/// and no restart moves it: only the formation's dynos must be on `wanted`.
fn dyno_waits(d: &runbook_vendors::heroku::Dyno, wanted: Option<u64>) -> DynoWait {
    let runs = d.release.as_ref().and_then(|r| r.version);
    let one_off = matches!(kind_of(d), "run" | "scheduler" | "release");
    match (d.state.as_str(), wanted, runs) {
        ("up", None, _) => DynoWait::Ready,
        ("up", Some(_), _) if one_off => DynoWait::Ready,
        ("up", Some(w), Some(v)) if v >= w => DynoWait::Ready,
        ("up", Some(w), Some(v)) => DynoWait::Waits(format!("{} up on v{v}, not v{w} yet", d.name)),
        ("up", Some(_), None) => DynoWait::Unnamed,
        (state, _, _) => DynoWait::Waits(format!("{} {state}", d.name)),
    }
}

fn apps(h: &RunContext) -> R<Dynamic> {
    h.require_step("heroku::apps")?;
    let v = h.vendors()?;
    let list = h.block("heroku GET /apps", async move { v.heroku().apps().await })?;
    Ok(list
        .into_iter()
        .map(Dynamic::from)
        .collect::<Array>()
        .into())
}

/// Every app (of `apps`, or all the key lists) whose config holds `value`, under any name.
fn holders(h: &RunContext, value: Secret, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::holders")?;
    value::check_keys(&opts, HOLDERS_OPTIONS, "heroku::holders")?;
    let apps = match opts.get("apps") {
        Some(a) => Some(targets(a, "heroku::holders apps")?),
        None => None,
    };
    let v = h.vendors()?;
    let fp = runbook_vendors::discovery::Wanted::now(value.fingerprint());
    let started = std::time::Instant::now();
    let progress = super::vendor_call::scan_progress(h.say(), "heroku: config vars read");
    let scan = h.block("heroku: reading every app's config vars", async move {
        runbook_vendors::discovery::heroku(&v, &fp, apps, progress).await
    })?;
    if scan.scanned >= 50 {
        h.say().progress(format!(
            "    heroku: read the config of {} apps in {:.1}s",
            scan.scanned,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(super::vendor_call::scan_map(&scan, holder_place).into())
}

/// A Heroku place that holds a value, as `holders` returns it: #{app, var}.
pub(super) fn holder_place(p: &runbook_vendors::discovery::Place) -> Map {
    let mut m = Map::new();
    m.insert("app".into(), p.place.clone().into());
    m.insert("var".into(), p.var.clone().into());
    m
}

fn scopes(h: &RunContext) -> R<Dynamic> {
    h.require_step("heroku::scopes")?;
    let v = h.vendors()?;
    let scopes = h.read("heroku GET /oauth/authorizations", async move {
        v.heroku().scopes().await
    })?;
    Ok(scopes_value(scopes))
}

/// The key's scopes for scripts: an array, or () when Heroku does not show them.
pub(super) fn scopes_value(scopes: Option<Vec<String>>) -> Dynamic {
    match scopes {
        Some(list) => list
            .into_iter()
            .map(Dynamic::from)
            .collect::<Array>()
            .into(),
        None => Dynamic::UNIT,
    }
}

fn releases(h: &RunContext, app: &str) -> R<Dynamic> {
    h.require_step("heroku::releases")?;
    let v = h.vendors()?;
    let app_name = app.to_string();
    let list = h.read(&format!("heroku GET /apps/{app}/releases"), async move {
        v.heroku().releases(&app_name).await
    })?;
    Ok(release_list(&list).into())
}

/// Several apps' releases, read concurrently: #{app: [release, ...]} (oldest first). Fails
/// naming the first app that could not be read.
fn releases_of(h: &RunContext, apps: Dynamic) -> R<Dynamic> {
    h.require_step("heroku::releases")?;
    let apps = targets(&apps, "heroku::releases apps")?;
    let results = each_app(h, &apps, "GET /apps/{}/releases", |v, app| async move {
        v.heroku().releases(&app).await
    })?;
    let mut out = Map::new();
    for (app, r) in results {
        let got = r.map_err(|e| super::vendor_call::vendor_error(&e))?;
        out.insert(app.as_str().into(), release_list(&got).into());
    }
    Ok(out.into())
}

/// Releases as a script sees them: #{id, version, description, status, created_at, current,
/// user}.
fn release_list(list: &[runbook_vendors::heroku::Release]) -> Array {
    list.iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("id".into(), r.id.clone().into());
            m.insert("version".into(), (r.version as i64).into());
            m.insert("description".into(), r.description.clone().into());
            m.insert("status".into(), r.status.clone().into());
            m.insert("created_at".into(), r.created_at.clone().into());
            m.insert("current".into(), r.current.into());
            m.insert(
                "user".into(),
                r.user
                    .as_ref()
                    .map(|u| u.email.clone())
                    .unwrap_or_default()
                    .into(),
            );
            Dynamic::from(m)
        })
        .collect()
}

/// The `lines` option of the log functions: 100 unless given, within Heroku's 1..=1500.
fn lines_option(opts: &Map) -> u32 {
    opts.get("lines")
        .and_then(|l| l.as_int().ok())
        .unwrap_or(100)
        .clamp(1, 1500) as u32
}

fn logs(h: &RunContext, app: &str, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::logs")?;
    value::check_keys(&opts, LOGS_OPTIONS, "heroku::logs")?;
    let lines = lines_option(&opts);
    let v = h.vendors()?;
    let app_name = app.to_string();
    let got = h.block(&format!("heroku logs {app}"), async move {
        v.heroku().log_lines(&app_name, lines).await
    })?;
    Ok(got.into_iter().map(Dynamic::from).collect::<Array>().into())
}

/// Several apps' recent log lines, read concurrently: #{app: #{lines}} or, for an app whose
/// log session failed, #{app: #{status, message}} (a Fir app answers 422: it keeps no log
/// history), so the script decides per app.
fn logs_of(h: &RunContext, apps: Dynamic, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::logs")?;
    let apps = targets(&apps, "heroku::logs apps")?;
    value::check_keys(&opts, LOGS_OPTIONS, "heroku::logs")?;
    let lines = lines_option(&opts);
    let results = each_app(h, &apps, "logs {}", move |v, app| async move {
        v.heroku().log_lines(&app, lines).await
    })?;
    Ok(logs_map(results))
}

/// Each app's lines as a script sees them (see `logs_of`).
fn logs_map(results: Vec<(String, Result<Vec<String>, runbook_vendors::VendorError>)>) -> Dynamic {
    let mut out = Map::new();
    for (app, r) in results {
        let mut entry = Map::new();
        match r {
            Ok(got) => {
                entry.insert(
                    "lines".into(),
                    got.into_iter().map(Dynamic::from).collect::<Array>().into(),
                );
            }
            Err(e) => {
                let no_history = e.code()
                    == Some(&runbook_vendors::VendorCode::Text(
                        runbook_vendors::heroku::NO_LOG_HISTORY.into(),
                    ));
                entry.insert("no_history".into(), no_history.into());
                entry.insert("status".into(), (e.status().unwrap_or(0) as i64).into());
                entry.insert(
                    "message".into(),
                    runbook_secret::redact(&e.to_string()).into_owned().into(),
                );
            }
        }
        out.insert(app.as_str().into(), entry.into());
    }
    out.into()
}

/// Log sessions `heroku::log_sessions` is opening: read by `heroku::read_logs`.
#[derive(Clone)]
pub(crate) struct LogSessions(Rc<RefCell<Option<Opening>>>);

type Opened = Vec<(
    String,
    Result<runbook_vendors::heroku::LogSession, runbook_vendors::VendorError>,
)>;

struct Opening {
    apps: Vec<String>,
    answer: super::together::Abandoned<Opened>,
}

/// Opens a log session for each app and returns at once: the sessions open while the
/// script goes on (a test email, say), and `read_logs` reads them after it, so what it
/// caused is in the lines read. Opening a session changes nothing at Heroku.
fn log_sessions(h: &RunContext, apps: Dynamic, opts: Map) -> R<LogSessions> {
    h.require_step("heroku::log_sessions")?;
    // An app named twice has one session (the answer is one entry per app).
    let mut apps = targets(&apps, "heroku::log_sessions apps")?;
    let mut seen = std::collections::HashSet::new();
    apps.retain(|a| seen.insert(a.clone()));
    value::check_keys(&opts, LOGS_OPTIONS, "heroku::log_sessions")?;
    let lines = lines_option(&opts);
    let v = h.vendors()?;
    let list = apps.clone();
    let answer = h
        .send_ahead(async move {
            fan_out(&v, &list, move |v, app| async move {
                v.heroku().open_log_session(&app, lines).await
            })
            .await
        })
        .map_err(super::vendor_call::stopped)?;
    Ok(LogSessions(Rc::new(RefCell::new(Some(Opening {
        apps,
        answer,
    })))))
}

/// The lines of the sessions `heroku::log_sessions` opened, every app's read at once: what
/// `heroku::logs(apps, options)` returns.
fn read_logs(h: &RunContext, sessions: LogSessions) -> R<Dynamic> {
    h.require_step("heroku::read_logs")?;
    let Some(mut opening) = sessions.0.borrow_mut().take() else {
        return Err(throw(
            "usage",
            "heroku::read_logs: these log sessions have been read already (heroku::log_sessions again)",
            None,
        ));
    };
    let v = h.vendors()?;
    let label = format!("heroku logs {{{}}}", opening.apps.join(","));
    let apps = opening.apps.clone();
    let results = h.block(&label, async move {
        let opened = (&mut opening.answer.0).await.map_err(|e| {
            runbook_vendors::VendorError::new(
                "heroku",
                "POST",
                "/apps/{app}/log-sessions",
                runbook_vendors::ErrorKind::Other,
                format!("opening the log sessions stopped: {e}"),
            )
        })?;
        let opened: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<_, _>>> =
            std::sync::Arc::new(std::sync::Mutex::new(opened.into_iter().collect()));
        Ok(fan_out(&v, &apps, move |v, app| {
            let session = opened.lock().ok().and_then(|mut o| o.remove(&app));
            async move {
                match session {
                    Some(Ok(s)) => v.heroku().read_log_session(&s).await,
                    Some(Err(e)) => Err(e),
                    None => Err(runbook_vendors::VendorError::new(
                        "heroku",
                        "POST",
                        format!("/apps/{app}/log-sessions"),
                        runbook_vendors::ErrorKind::Other,
                        "no session was opened",
                    )),
                }
            }
        })
        .await)
    })?;
    Ok(logs_map(results))
}

/// The options maps' keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const WAIT_UP_OPTIONS: &[&str] = &["timeout", "releases", "preboot_window"];
pub(crate) const HOLDERS_OPTIONS: &[&str] = &["apps"];
pub(crate) const LOGS_OPTIONS: &[&str] = &["lines"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Heroku.name());
    m.add(
        "config",
        Effect::Read,
        &["app: string"],
        "Map",
        "An app's config vars; every value is a Secret (config vars usually are).",
        |c: NativeCallContext, a: &str| {
            value::at(&c, with_run(&c, "heroku::config", |h| config(h, a)))
        },
    );
    m.add(
        "configs",
        Effect::Read,
        &["apps: Array"],
        "Map",
        "Several apps' config vars, read concurrently: #{app: config} (values as `config` gives
them). Fails naming the first app that could not be read.",
        |c: NativeCallContext, a: Dynamic| {
            value::at(&c, with_run(&c, "heroku::configs", |h| configs(h, a)))
        },
    )
    .at_once("each app");
    m.add("set_config", Effect::Write, &["apps: string | Array", "vars: Map"], "Map",
        "Sets config vars on one app or many (concurrently; each change is a new release and\nrestarts the app). Values: string, Secret, or () to remove. Returns #{app: #{ok}}; fails\nnaming each app that failed.",
        |c: NativeCallContext, a: Dynamic, v: Map| value::at(&c, with_run(&c, "heroku::set_config", |h| set_config(h, a, v))))
    .repeat(Repeat::Safe)
    .at_once("each app");
    m.add(
        "restart",
        Effect::Write,
        &["apps: string | Array"],
        "Map",
        "Restarts every dyno of one app or many (concurrently). Returns #{app: #{ok}}.",
        |c: NativeCallContext, a: Dynamic| {
            value::at(&c, with_run(&c, "heroku::restart", |h| restart(h, a)))
        },
    )
    .repeat(Repeat::Safe)
    .no_undo("a restart changes no state: the app runs the same config afterwards")
    .at_once("each app");
    m.add(
        "wait_up",
        Effect::Read,
        &["apps: string | Array", "options: Map"],
        "()",
        "Waits until every dyno of the apps is up (a restart answers 202 before the dynos boot),\npolling GET /apps/{app}/dynos with backoff (100 ms, doubling to 2 s). Options: #{timeout:\nseconds (default 120), releases: #{app: version}: an app's dynos count only when they run\nthat release or a later one (the one with the new config), not an older one still up;\none-off dynos (run, scheduler, release) keep theirs and are not waited for; preboot_window:\nseconds (default 180, Heroku's boot timeout + 2 minutes)}. On an app with preboot\n(GET /apps/{app}/features/preboot) Heroku lists only the new dynos while the old web ones\nkeep the traffic, on the old config, for that window after the change: once the new dynos\nare up it waits out the rest, counted on Heroku's clock, on top of timeout. Fails naming\nthe apps still starting, crashed or on an older release.",
        |c: NativeCallContext, apps: Dynamic, o: Map| {
            value::at(&c, with_run(&c, "heroku::wait_up", |h| wait_up(h, apps, o)))
        },
    )
    .at_once("each app");
    m.add(
        "apps",
        Effect::Read,
        &[],
        "Array",
        "The names of every app the key can see (GET /apps, all pages).",
        |c: NativeCallContext| value::at(&c, with_run(&c, "heroku::apps", apps)),
    );
    m.add(
        "holders",
        Effect::Read,
        &["value: Secret", "options: Map"],
        "Map",
        "Every app whose config holds `value` under any var name, compared by keyed fingerprint\n(no value is returned). Options: #{apps (default: every app the key lists)}. Returns\n#{found: [#{app, var}], unchecked: [#{place, error}], scanned}; configs are read\nconcurrently, paced to Heroku's request pool.",
        |c: NativeCallContext, s: Secret, o: Map| {
            value::at(&c, with_run(&c, "heroku::holders", |h| holders(h, s, o)))
        },
    )
    .at_once("each app");
    m.add(
        "scopes",
        Effect::Read,
        &[],
        "Array | ()",
        "The OAuth scopes of HEROKU_API_KEY (e.g. [\"global\"], or [\"read-protected\",\n\"write-protected\"]), from GET /oauth/authorizations; () when Heroku does not list them for this\nkey (only a global key may list authorizations). Config vars need read-protected to read and\nwrite-protected to change.",
        |c: NativeCallContext| value::at(&c, with_run(&c, "heroku::scopes", scopes)),
    );
    m.add(
        "releases",
        Effect::Read,
        &["app: string"],
        "Array",
        "The app's releases, oldest first: #{version, description, status, current, ...}.",
        |c: NativeCallContext, a: &str| {
            value::at(&c, with_run(&c, "heroku::releases", |h| releases(h, a)))
        },
    );
    m.add(
        "releases",
        Effect::Read,
        &["apps: Array"],
        "Map",
        "Several apps' releases, read concurrently: #{app: [release, ...]}, oldest first.",
        |c: NativeCallContext, a: Array| {
            value::at(
                &c,
                with_run(&c, "heroku::releases", |h| releases_of(h, Dynamic::from(a))),
            )
        },
    )
    .at_once("each app");
    m.add(
        "logs",
        Effect::Read,
        &["app: string", "options: Map"],
        "Array",
        "Recent log lines of the app (a log session). Options: #{lines} (default 100).",
        |c: NativeCallContext, a: &str, o: Map| {
            value::at(&c, with_run(&c, "heroku::logs", |h| logs(h, a, o)))
        },
    );
    m.add(
        "logs",
        Effect::Read,
        &["apps: Array", "options: Map"],
        "Map",
        "Several apps' recent log lines, read concurrently: #{app: #{lines}}, or #{app: #{status,\nmessage, no_history}} for an app whose lines could not be read (no_history: a Fir app,\nwhose log sessions only stream what comes next).\nOptions: #{lines} (default 100).",
        |c: NativeCallContext, a: rhai::Array, o: Map| {
            value::at(
                &c,
                with_run(&c, "heroku::logs", |h| logs_of(h, Dynamic::from(a), o)),
            )
        },
    )
    .at_once("each app");
    m.add(
        "logs",
        Effect::Read,
        &["app: string"],
        "Array",
        "The last 100 log lines of the app.",
        |c: NativeCallContext, a: &str| {
            value::at(&c, with_run(&c, "heroku::logs", |h| logs(h, a, Map::new())))
        },
    );
    m.add(
        "log_sessions",
        Effect::Read,
        &["apps: Array", "options: Map"],
        "LogSessions",
        "Opens a log session for each app and returns at once; `heroku::read_logs(sessions)` reads\nthem. A session's lines are those logged when it is read, so opening them before what they\nshould show (a test email) saves a round and misses nothing. Opening one changes nothing at\nHeroku; one unused for about five minutes expires, and is opened again when read.\nOptions: #{lines} (default 100).",
        |c: NativeCallContext, a: rhai::Array, o: Map| {
            value::at(
                &c,
                with_run(&c, "heroku::log_sessions", |h| {
                    log_sessions(h, Dynamic::from(a), o)
                }),
            )
        },
    )
    .at_once("each app, not waited for: heroku::read_logs reads them");
    m.add(
        "read_logs",
        Effect::Read,
        &["sessions: LogSessions"],
        "Map",
        "The recent lines of the sessions `heroku::log_sessions` opened, every app's at once: what\n`heroku::logs(apps, options)` returns.",
        |c: NativeCallContext, s: LogSessions| {
            value::at(&c, with_run(&c, "heroku::read_logs", |h| read_logs(h, s)))
        },
    )
    .at_once("each app");
    m.finish();
    crate::engine::registry::opaque_type::<LogSessions>(
        reg,
        "LogSessions",
        "Heroku log sessions being opened",
    );
}

#[cfg(test)]
mod wait_tests {
    use super::{dyno_waits, DynoWait};
    use runbook_vendors::heroku::{Dyno as D, DynoRelease};

    fn dyno(name: &str, kind: Option<&str>, state: &str, version: Option<u64>) -> D {
        D {
            name: name.into(),
            state: state.into(),
            release: Some(DynoRelease { version }),
            kind: kind.map(str::to_string),
            updated_at: None,
        }
    }

    /// The preboot window is counted on Heroku's clock, from the newest web dyno's `up` to
    /// Heroku's answer, with 2 s for the whole seconds; the whole window when either is
    /// missing, none once it has passed. Worker dynos do not count: preboot is for web ones.
    #[test]
    fn preboot_left_counts_on_herokus_clock_from_the_newest_web_dyno() {
        use super::preboot_left;
        use runbook_vendors::heroku::Dynos;
        use std::time::Duration;
        let at = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        };
        let with = |name: &str, kind: &str, up: &str| D {
            updated_at: Some(up.into()),
            ..dyno(name, Some(kind), "up", Some(4))
        };
        let window = Duration::from_secs(180);
        let dynos = Dynos {
            list: vec![
                with("web.1", "web", "2026-12-05T12:00:00Z"),
                with("web.2", "web", "2026-12-05T12:00:10Z"),
                with("worker.1", "worker", "2026-12-05T12:02:50Z"),
            ],
            answered_at: at("2026-12-05T12:01:00Z"),
        };
        assert_eq!(preboot_left(&dynos, window), Duration::from_secs(132));
        let late = Dynos {
            answered_at: at("2026-12-05T12:05:00Z"),
            ..dynos.clone()
        };
        assert_eq!(preboot_left(&late, window), Duration::ZERO);
        let unsaid = Dynos {
            answered_at: None,
            ..dynos.clone()
        };
        assert_eq!(preboot_left(&unsaid, window), Duration::from_secs(182));
        let mut no_time = dynos;
        no_time.list[0].updated_at = None;
        assert_eq!(preboot_left(&no_time, window), Duration::from_secs(182));
    }

    /// The formation's dynos must be up on the wanted release; a one-off keeps its own
    /// release and never blocks the wait; a dyno that names no release is counted, and said.
    #[test]
    fn a_dyno_counts_when_up_on_the_release_waited_for() {
        let web = |state, v| dyno("web.1", Some("web"), state, v);
        assert_eq!(dyno_waits(&web("up", Some(3)), None), DynoWait::Ready);
        assert_eq!(dyno_waits(&web("up", Some(4)), Some(4)), DynoWait::Ready);
        assert_eq!(dyno_waits(&web("up", Some(5)), Some(4)), DynoWait::Ready);
        assert_eq!(
            dyno_waits(&web("up", Some(3)), Some(4)),
            DynoWait::Waits("web.1 up on v3, not v4 yet".into())
        );
        assert_eq!(
            dyno_waits(&web("starting", Some(4)), Some(4)),
            DynoWait::Waits("web.1 starting".into())
        );
        assert_eq!(dyno_waits(&web("up", None), Some(4)), DynoWait::Unnamed);
        // A console started before the change, by its type or (no type) by its name.
        assert_eq!(
            dyno_waits(&dyno("run.4821", Some("run"), "up", Some(3)), Some(4)),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&dyno("scheduler.1", None, "up", Some(3)), Some(4)),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&dyno("worker.1", Some("worker"), "up", Some(3)), Some(4)),
            DynoWait::Waits("worker.1 up on v3, not v4 yet".into())
        );
    }
}
