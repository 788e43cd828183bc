//! `heroku::`: config vars (values are `Secret`s), restarts, releases and logs. Functions
//! that take several apps call them concurrently and report per app.

use super::placeholder::Placeholder;
use super::vendor_call::{fan_out, is_dry_run_secret, per_target, targets, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::value::{self, throw};
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};
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
        } else if let Some(fp) = value::kept_as_fingerprint(v) {
            return Err(value::only_a_fingerprint(&format!("config var {k}"), &fp));
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

/// How a var set from text is kept in the journal and the audit log: in clear when it is
/// plainly a setting (a name like `*_REGION`, a word-like value), else by fingerprint, as a
/// Secret is; a credential a runbook passed as text is never written down. A read back
/// compares either form.
fn recorded_text(name: &str, text: &str) -> String {
    if runbook_secret::bulk_value_is_plain(name, text) {
        text.to_string()
    } else {
        // Kept out of every output too: a vendor's answer quoting it comes back masked.
        runbook_secret::register(text);
        runbook_secret::fingerprint(text)
    }
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
            Some(ConfigValue::Plain(p)) => recorded_text(k, p).into(),
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
    let results = h.writes().mutate_each(
        "heroku::set_config",
        Effect::Write,
        &apps,
        change,
        |n| format!("heroku PATCH config-vars on {n} app(s)"),
        |v, app| {
            let changes = changes.clone();
            async move {
                v.heroku()
                    .update_config_vars(&app, &changes)
                    .await
                    .map(|_| ())
            }
        },
    )?;
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
        |n| format!("heroku restart {n} app(s)"),
        |v, app| async move { v.heroku().restart_all(&app).await },
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
    // Heroku moves the traffic the app's boot timeout plus 2 minutes after a change (Heroku
    // changelog, 2017-04-19): RUNBOOK_HEROKU_PREBOOT_WINDOW, 180 s unless set.
    let preboot_window = opts
        .contains_key("preboot_window")
        .then(|| seconds("preboot_window", 0, 0))
        .transpose()?
        .map(|s| std::time::Duration::from_secs(s as u64));
    // The release each app's dynos must run (at least): a dyno up on an older one is not
    // the new config running. `"newest"`: each app's newest release, read beside each poll
    // until it has succeeded (every poll with preboot).
    let mut releases: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut newest = false;
    if let Some(r) = opts.get("releases") {
        let usage = || {
            throw(
                "usage",
                "heroku::wait_up: releases is \"newest\" or a map of app name to release version, e.g. #{ \"my-app\": 42 }",
                None,
            )
        };
        newest = r
            .clone()
            .into_immutable_string()
            .is_ok_and(|t| t.as_str() == "newest");
        let map = if newest {
            Map::new()
        } else {
            r.read_lock::<Map>().ok_or_else(usage)?.clone()
        };
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
        return Ok(waited(Array::new()));
    }
    let (local, setting) = {
        let v = h.vendors()?;
        let c = &v.config().heroku;
        (
            runbook_vendors::config::is_loopback_url(&c.api_url),
            c.preboot_window,
        )
    };
    let preboot_window = match preboot_window {
        // As for the setting (VendorConfig::checked): no real app's window is shorter.
        Some(w) if w.as_secs() < 180 && !local => {
            return Err(throw(
                "usage",
                format!("heroku::wait_up: preboot_window {}s is shorter than any Heroku app's (180 s: the boot timeout, 60 s at least, plus 2 minutes)", w.as_secs()),
                Some("leave it out (RUNBOOK_HEROKU_PREBOOT_WINDOW, 180 s unless set, applies), or give 180 to 600; a shorter window is only for a sandbox".into()),
            ))
        }
        Some(w) => w,
        None => setting,
    };
    let mut deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout as u64);
    // Dynos and apps already said something of (once each).
    let mut said = std::collections::HashSet::new();
    // One-off dynos on a release before the one waited for: they keep the old config.
    let mut one_offs = Array::new();
    // What each app's first poll read beside its dynos.
    let mut facts: std::collections::HashMap<String, AppFacts> = std::collections::HashMap::new();
    // A preboot app whose new dynos are up: when its traffic has moved, on this machine's
    // clock. Every poll counts it again and keeps the later time: a restart meanwhile starts
    // Heroku's window again.
    let mut switch_at: std::collections::HashMap<String, std::time::Instant> =
        std::collections::HashMap::new();
    let mut pause = std::time::Duration::from_millis(100);
    let mut pending: Vec<String> = apps.clone();
    // Apps whose newest release was in its release phase at the last poll: that release and
    // when this wait first saw it pending (a release command gets 10 minutes, counted from
    // there). Only the release is read until it leaves the phase (the dynos run the one
    // before).
    let mut in_phase: std::collections::HashMap<String, (u64, std::time::Instant)> =
        std::collections::HashMap::new();
    loop {
        let mut still = Vec::new();
        // How many of them wait only for their preboot window, and for a release phase.
        let mut switching = 0;
        let mut phases = 0;
        // Every app still pending at once: the wait is as long as the slowest app's boot,
        // not the sum of the polls.
        let reads: std::collections::HashMap<String, (Reads, bool)> = pending
            .iter()
            .map(|app| {
                let formation_known = facts.get(app).is_some_and(|f| f.formation.is_some());
                let reads = match facts.get(app) {
                    None => Reads::First,
                    Some(_) if in_phase.contains_key(app) => Reads::Release,
                    // Preboot counts from the change: the newest release, read each poll.
                    Some(f) if f.preboot || (newest && !releases.contains_key(app)) => {
                        Reads::DynosAndRelease
                    }
                    Some(_) => Reads::Dynos,
                };
                (app.clone(), (reads, formation_known))
            })
            .collect();
        let what = if reads.values().all(|r| matches!(r.0, Reads::Release)) {
            "GET /apps/{}/releases"
        } else {
            "GET /apps/{}/dynos"
        };
        let polled = each_app(h, &pending, what, move |v, app| {
            let (reads, formation_known) =
                reads.get(&app).copied().unwrap_or((Reads::First, false));
            async move {
                let heroku = v.heroku();
                let dynos = || dynos_and_formation(heroku, &app, formation_known);
                Ok(match reads {
                    Reads::DynosAndRelease => {
                        let ((dynos, formation), release) =
                            tokio::try_join!(dynos(), heroku.latest_release(&app))?;
                        Poll {
                            dynos: Some(dynos),
                            formation,
                            release,
                            preboot: None,
                        }
                    }
                    Reads::Dynos => {
                        let (dynos, formation) = dynos().await?;
                        Poll {
                            dynos: Some(dynos),
                            formation,
                            release: None,
                            preboot: None,
                        }
                    }
                    Reads::Release => Poll {
                        dynos: None,
                        formation: None,
                        release: heroku.latest_release(&app).await?,
                        preboot: None,
                    },
                    // The first poll: whether the app has preboot and, for "newest", the
                    // release, in one round with the dynos.
                    Reads::First => {
                        let release = async {
                            match newest {
                                true => heroku.latest_release(&app).await,
                                false => Ok(None),
                            }
                        };
                        let ((dynos, formation), preboot, release) =
                            tokio::try_join!(dynos(), heroku.preboot(&app), release)?;
                        Poll {
                            dynos: Some(dynos),
                            formation,
                            release,
                            preboot: Some(preboot),
                        }
                    }
                })
            }
        })?;
        // The earliest moment a preboot app's traffic moves.
        let mut next_switch: Option<std::time::Instant> = None;
        for (app, answer) in polled {
            let mut poll = answer.map_err(|e| super::vendor_call::vendor_error(&e))?;
            let first_poll = poll.preboot.is_some();
            if let Some(preboot) = poll.preboot {
                facts.insert(
                    app.clone(),
                    AppFacts {
                        preboot,
                        formation: None,
                    },
                );
            }
            if let (Some(formation), Some(f)) = (poll.formation.take(), facts.get_mut(&app)) {
                f.formation = Some(formation);
            }
            if newest {
                match poll.release.as_ref() {
                    Some(r) if r.status == "pending" => {
                        let since = match in_phase.get(&app) {
                            Some((v, since)) if *v == r.version => *since,
                            _ => std::time::Instant::now(),
                        };
                        if since.elapsed().as_secs() >= RELEASE_PHASE_SECS {
                            return Err(phase_too_long(h, &app, r.version));
                        }
                        in_phase.insert(app.clone(), (r.version, since));
                        phases += 1;
                        still.push((app, format!("release v{} in its release phase", r.version)));
                        continue;
                    }
                    Some(r) if r.status != "succeeded" => return Err(release_failed(h, &app, r)),
                    // Succeeded: the release its dynos must run (at least), from now on.
                    Some(r) => {
                        releases.insert(app.clone(), r.version);
                    }
                    None => {}
                }
            }
            in_phase.remove(&app);
            let (preboot, formation) = facts
                .get(&app)
                .map_or((false, None), |f| (f.preboot, f.formation.as_deref()));
            let one_off =
                |d: &runbook_vendors::heroku::Dyno| is_one_off(d, formation.unwrap_or_default());
            let Some(dynos) = poll.dynos.as_ref() else {
                // Out of its release phase since the last poll: the next one, soon, reads the
                // dynos, which get the boot's whole timeout from now.
                phases += 1;
                pause = std::time::Duration::from_millis(100);
                still.push((app, "its release phase just ended".to_string()));
                continue;
            };
            let wanted = releases.get(&app).copied();
            let mut not_up: Vec<String> = Vec::new();
            for d in &dynos.list {
                match dyno_waits(d, wanted, one_off(d)) {
                    DynoWait::Ready => {}
                    DynoWait::Unnamed => {
                        if said.insert(format!("unnamed {app} {}", d.name)) {
                            h.say().progress(format!(
                                "    {app}: {} does not say which release it runs; counted as up",
                                d.name
                            ));
                        }
                    }
                    DynoWait::OneOffBefore(v) => {
                        if said.insert(format!("one-off {app} {}", d.name)) {
                            let mut o = Map::new();
                            o.insert("app".into(), app.clone().into());
                            o.insert("dyno".into(), d.name.clone().into());
                            o.insert("state".into(), d.state.clone().into());
                            o.insert("release".into(), Dynamic::from_int(v as i64));
                            one_offs.push(o.into());
                            h.say().progress(format!(
                                "    {app}: one-off dyno {} ({}) runs v{v}, from before the change: it keeps the old config until it exits; no restart moves it",
                                d.name, d.state
                            ));
                        }
                    }
                    DynoWait::Waits(why) => not_up.push(why),
                }
            }
            // Read only when this or an earlier poll needed it (see `dynos_and_formation`).
            let asked: Option<u64> = formation.map(|f| f.iter().map(|p| p.quantity).sum());
            if asked == Some(0) {
                // Nothing runs, so nothing holds the old config: it is read at the next scale up.
                if said.insert(format!("zero {app}")) {
                    h.say().progress(format!(
                        "    {app}: scaled to zero (its formation runs no dyno): no process to wait for; the config is read when it is scaled up"
                    ));
                }
                continue;
            }
            let listed = dynos.list.iter().filter(|d| !one_off(d)).count();
            if listed == 0 || !not_up.is_empty() {
                let why = if not_up.is_empty() {
                    match asked {
                        Some(n) => format!("no dyno of its formation listed, which asks for {n}"),
                        None => "no dyno listed".to_string(),
                    }
                } else {
                    not_up.join(", ")
                };
                still.push((app, why));
                continue;
            }
            let has_web = dynos.list.iter().any(|d| kind_of(d) == "web");
            if !preboot || preboot_window.is_zero() || !has_web {
                continue;
            }
            // Just found to have preboot: the next poll reads its newest release too (the
            // first read it already for "newest").
            let now = std::time::Instant::now();
            let at = if first_poll && poll.release.is_none() {
                now
            } else {
                let left = preboot_left(dynos, poll.release.as_ref(), preboot_window);
                let at = switch_at
                    .get(&app)
                    .copied()
                    .map_or(now + left, |before| before.max(now + left));
                switch_at.insert(app.clone(), at);
                if !left.is_zero() && said.insert(format!("preboot {app}")) {
                    h.say().progress(format!(
                        "    {app}: preboot is on: its old web dynos keep the traffic, on the old config, until about {}s after the change; waiting {}s more",
                        preboot_window.as_secs(),
                        left.as_secs()
                    ));
                }
                if now >= at {
                    continue;
                }
                at
            };
            next_switch = Some(next_switch.map_or(at, |n| n.min(at)));
            switching += 1;
            still.push((
                app,
                format!(
                    "preboot: the old web dynos keep the traffic for about {}s more",
                    at.saturating_duration_since(now).as_secs()
                ),
            ));
        }
        if still.is_empty() {
            return Ok(waited(one_offs));
        }
        pending = still.iter().map(|(app, _)| app.clone()).collect();
        // Only preboot windows left: no need to poll often, but often enough (30 s) to see a
        // restart that starts a window again.
        let only_switching = switching == still.len();
        // Waiting only on Heroku's schedule (windows, release phases): not the boot's timeout.
        let on_heroku = switching + phases == still.len();
        let sleep = match next_switch.filter(|_| only_switching) {
            Some(at) => at
                .saturating_duration_since(std::time::Instant::now())
                .min(std::time::Duration::from_secs(30)),
            None => pause,
        };
        // The preboot window and a release phase are waited on top of `timeout`, which is
        // for the boot.
        if !on_heroku && std::time::Instant::now() + sleep > deadline {
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
                Some(match (h.scope().in_undo(), still.iter().any(|(_, why)| why.contains(" not v"))) {
                    (true, _) => "the config is restored, but a dyno not up on the release that restored it still runs the value being rolled back: check `heroku releases -a APP` and `heroku ps -a APP`, then run the rollback again (it waits again); keep that value valid until then".into(),
                    (false, true) => "a dyno on an older release still serves the old config: check `heroku releases -a APP` and `heroku ps -a APP`; retry the step once it runs the new release".into(),
                    (false, false) => "check the app's logs (heroku logs -a APP); a crashed dyno needs a fix before the rotation can finish".into(),
                }),
            ));
        }
        super::core::sleep(sleep.as_secs_f64())?;
        if on_heroku {
            // A dyno restarting (daily cycling) just when the window ends gets a boot's time,
            // and so do the dynos of a release out of its release phase.
            deadline = deadline
                .max(std::time::Instant::now() + std::time::Duration::from_secs(timeout as u64));
        }
        if !only_switching {
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }
}

/// What `wait_up` returns: #{one_offs: [#{app, dyno, state, release}]}.
fn waited(one_offs: Array) -> Dynamic {
    let mut m = Map::new();
    m.insert("one_offs".into(), one_offs.into());
    m.into()
}

/// How long `wait_up` waits for a release phase before the boot.
const RELEASE_PHASE_SECS: u64 = 600;

/// What one poll of an app reads.
#[derive(Clone, Copy)]
enum Reads {
    /// Its dynos, whether it has preboot (and the newest release for `releases: "newest"`);
    /// the formation if its dynos need it ([`dynos_and_formation`]).
    First,
    Dynos,
    /// Its dynos and newest release: with preboot (the window counts from the change), or
    /// for `releases: "newest"`.
    DynosAndRelease,
    /// Only its newest release: it was in its release phase.
    Release,
}

/// An app's dynos and, when they are the first to need it and it is not known yet, its
/// formation: to tell a one-off (`run`, `scheduler`, `release`) from a process type the app
/// runs, and an app scaled to zero from one whose dynos are not listed yet. A list of the
/// formation's own types needs none: one request per app less on Heroku's pool (4,500 an
/// hour), which a fleet's wait spends app by app.
async fn dynos_and_formation(
    heroku: &runbook_vendors::heroku::HerokuClient,
    app: &str,
    formation_known: bool,
) -> Result<
    (
        runbook_vendors::heroku::Dynos,
        Option<Vec<runbook_vendors::heroku::Formation>>,
    ),
    runbook_vendors::VendorError,
> {
    let dynos = heroku.dynos(app).await?;
    let needs = dynos.list.is_empty() || dynos.list.iter().any(|d| one_off_kind(kind_of(d)));
    let formation = match needs && !formation_known {
        true => Some(heroku.formation(app).await?),
        false => None,
    };
    Ok((dynos, formation))
}

/// What one poll of an app read.
struct Poll {
    /// None when only the release was read.
    dynos: Option<runbook_vendors::heroku::Dynos>,
    /// Its formation, when this poll read it.
    formation: Option<Vec<runbook_vendors::heroku::Formation>>,
    /// Whether it has preboot: read at its first poll.
    preboot: Option<bool>,
    /// Its newest release: read at each poll of an app with preboot, or for "newest".
    release: Option<runbook_vendors::heroku::Release>,
}

/// The error for a release whose release phase has run 10 minutes: its command may be stuck,
/// and meanwhile the dynos run the release before it.
fn phase_too_long(h: &RunContext, app: &str, version: u64) -> Box<EvalAltResult> {
    let what = format!(
        "heroku::wait_up: {app}: release v{version} is still in its release phase after {}s: the dynos run the release before it",
        RELEASE_PHASE_SECS
    );
    let check = format!("a release command this long may be stuck: check `heroku releases:output v{version} -a {app}`;");
    let hint = if h.scope().in_undo() {
        format!("{check} the dynos still hold the value being rolled back: keep it valid, and run the rollback again once the release has finished")
    } else {
        format!("{check} the dynos keep the value from before the change: keep it valid, and retry the step once the release has finished")
    };
    throw("vendor", what, Some(hint))
}

/// The error for a newest release that failed its release phase (or is in any state but
/// pending or succeeded): its dynos stay on the last release that succeeded. In an undo,
/// that release may hold the value being rolled back.
fn release_failed(
    h: &RunContext,
    app: &str,
    r: &runbook_vendors::heroku::Release,
) -> Box<EvalAltResult> {
    let fix = format!(
        "fix the release command (heroku releases:output v{} -a {app}), run it again (heroku releases:retry -a {app}), then",
        r.version
    );
    let (which, holds, next) = if h.scope().in_undo() {
        (
            ", which puts the previous config back,",
            "the dynos run the last release that succeeded, which may hold the value being rolled back",
            "run the rollback again; keep that value valid until it passes",
        )
    } else {
        (
            "",
            "its dynos run the last release that succeeded, which may not hold the change",
            "retry the step; until then the dynos keep the value from before the change: keep it valid",
        )
    };
    throw(
        "vendor",
        format!(
            "{app}: release v{} ({}){which} is {}: {holds}",
            r.version, r.description, r.status
        ),
        Some(format!("{fix} {next}")),
    )
}

/// What `wait_up` reads of an app once: whether it has preboot beside its first poll, its
/// formation with the first poll that needs it.
struct AppFacts {
    /// Whether it has preboot.
    preboot: bool,
    /// Its process types and how many dynos of each run, once a poll needed them.
    formation: Option<Vec<runbook_vendors::heroku::Formation>>,
}

/// How much of the preboot window is left, on Heroku's clock: from the change (the newest
/// release) or, if later, when the newest web dyno came up (so a restart or a lagging dyno
/// list errs long), to Heroku's answer. Plus 30 s: Heroku says "approximately", and a
/// request the old dynos took just before the switch may run its 30 s (the router's limit).
/// A real window is at least 180 s; a shorter one (a compressed rehearsal) gets a sixth of
/// itself. The whole window, and the margin, when Heroku gives no time.
fn preboot_left(
    dynos: &runbook_vendors::heroku::Dynos,
    release: Option<&runbook_vendors::heroku::Release>,
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
    let changed = release.and_then(|r| parse(&r.created_at));
    let since = match (up_since, changed) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let margin = (window / 6).min(std::time::Duration::from_secs(30));
    match (since, dynos.answered_at) {
        (Some(since), Some(now)) => {
            let age = std::time::Duration::try_from(now - since).unwrap_or_default();
            (window + margin).saturating_sub(age)
        }
        _ => window + margin,
    }
}

/// Whether `d` is a one-off: a console, a scheduled job or a release command, of a type the
/// formation does not run (a Procfile may name a process `scheduler`: while it runs, a
/// dyno of that type is waited for; scaled to zero, Heroku Scheduler's jobs are one-offs).
fn is_one_off(
    d: &runbook_vendors::heroku::Dyno,
    formation: &[runbook_vendors::heroku::Formation],
) -> bool {
    let kind = kind_of(d);
    one_off_kind(kind) && !formation.iter().any(|p| p.kind == kind && p.quantity > 0)
}

/// Whether a dyno of process type `kind` may be a one-off (unless the formation runs it).
fn one_off_kind(kind: &str) -> bool {
    matches!(kind, "run" | "scheduler" | "release")
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
    /// A one-off on a release before the one waited for: not waited for (no restart moves
    /// it), but said, since it keeps the old config until it exits.
    OneOffBefore(u64),
    /// Not yet: why, as `web.1 starting` or `web.1 up on v3, not v4 yet`.
    Waits(String),
}

/// Whether `d` is up, and (when `wanted` names a release) on that release or a later one.
/// A one-off (a console, a scheduled job, a release phase) keeps the release it started on
/// and no restart moves it: whatever its state, only the formation's dynos are waited for.
fn dyno_waits(d: &runbook_vendors::heroku::Dyno, wanted: Option<u64>, one_off: bool) -> DynoWait {
    let runs = d.release.as_ref().and_then(|r| r.version);
    match (d.state.as_str(), wanted, runs) {
        // One still running (a crashed or finished one holds nothing).
        ("up" | "starting", Some(w), Some(v)) if one_off && v < w => DynoWait::OneOffBefore(v),
        _ if one_off => DynoWait::Ready,
        ("up", None, _) => DynoWait::Ready,
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
fn releases_of(h: &RunContext, apps: Dynamic, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::releases")?;
    let apps = targets(&apps, "heroku::releases apps")?;
    value::check_keys(&opts, RELEASES_OPTIONS, "heroku::releases")?;
    let newest = match opts.get("newest") {
        None => None,
        Some(n) => Some(
            n.as_int()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    throw(
                        "usage",
                        "heroku::releases: newest is a whole number from 1 to 1000",
                        None,
                    )
                })? as u32,
        ),
    };
    let results = each_app(
        h,
        &apps,
        "GET /apps/{}/releases",
        move |v, app| async move {
            match newest {
                Some(n) => v.heroku().newest_releases(&app, n).await,
                None => v.heroku().releases(&app).await,
            }
        },
    )?;
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
    Ok(log_lines(got).into())
}

/// Log lines as a script gets them: any registered secret in a line (an app logging a URL
/// with the token in its query) masked, so a script that cuts or splits a line cannot pass
/// a piece of the secret on as text.
fn log_lines(lines: impl IntoIterator<Item = String>) -> Array {
    lines
        .into_iter()
        .map(|l| Dynamic::from(runbook_secret::redact(&l).into_owned()))
        .collect()
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
                entry.insert("lines".into(), log_lines(got).into());
            }
            Err(e) => entry = error_entry(&e),
        }
        out.insert(app.as_str().into(), entry.into());
    }
    out.into()
}

/// An app whose lines could not be read: #{status, message, no_history}.
fn error_entry(e: &runbook_vendors::VendorError) -> Map {
    let mut entry = Map::new();
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
    entry
}

/// Log sessions `heroku::log_sessions` is opening: read by `heroku::read_logs`.
#[derive(Clone)]
pub(crate) struct LogSessions(Rc<RefCell<Option<Opening>>>);

type Opened<S> = Vec<(String, Result<S, runbook_vendors::VendorError>)>;

struct Opening {
    apps: Vec<String>,
    sessions: Sessions,
}

/// Sessions read when asked (their lines are those logged by then), or tails that bring
/// each line as it is logged.
enum Sessions {
    Read(super::together::Abandoned<Opened<runbook_vendors::heroku::LogSession>>),
    Tail(super::together::Abandoned<Opened<runbook_vendors::heroku::LogTail>>),
}

/// Opens a log session for each app and returns at once: the sessions open while the
/// script goes on (a test email, say), and `read_logs` reads them after it, so what it
/// caused is in the lines read. Opening a session changes nothing at Heroku. `tail: true`
/// opens `heroku logs --tail`: each app's stream is read from then on, so what it brings
/// while the script waits is there when `read_logs` asks.
fn log_sessions(h: &RunContext, apps: Dynamic, opts: Map) -> R<LogSessions> {
    h.require_step("heroku::log_sessions")?;
    // An app named twice has one session: `targets` names each app once.
    let apps = targets(&apps, "heroku::log_sessions apps")?;
    value::check_keys(&opts, LOG_SESSIONS_OPTIONS, "heroku::log_sessions")?;
    let lines = lines_option(&opts);
    let tail = match opts.get("tail") {
        None => false,
        Some(t) => t.as_bool().map_err(|_| {
            throw(
                "usage",
                "heroku::log_sessions: option tail must be true or false",
                None,
            )
        })?,
    };
    let v = h.vendors()?;
    let list = apps.clone();
    let sessions = if tail {
        Sessions::Tail(
            h.send_ahead(async move {
                fan_out(&v, &list, move |v, app| async move {
                    v.heroku().tail_logs(&app, lines).await
                })
                .await
            })
            .map_err(super::vendor_call::stopped)?,
        )
    } else {
        Sessions::Read(
            h.send_ahead(async move {
                fan_out(&v, &list, move |v, app| async move {
                    v.heroku().open_log_session(&app, lines).await
                })
                .await
            })
            .map_err(super::vendor_call::stopped)?,
        )
    };
    Ok(LogSessions(Rc::new(RefCell::new(Some(Opening {
        apps,
        sessions,
    })))))
}

/// The failure of a log session that never opened (its task stopped).
fn opening_stopped(e: impl std::fmt::Display) -> runbook_vendors::VendorError {
    runbook_vendors::VendorError::new(
        "heroku",
        "POST",
        "/apps/{app}/log-sessions",
        runbook_vendors::ErrorKind::Other,
        format!("opening the log sessions stopped: {e}"),
    )
}

/// The lines of the sessions `heroku::log_sessions` opened, every app's read at once: what
/// `heroku::logs(apps, options)` returns. Tails (`tail: true`) may be waited on: `find`,
/// a text, waits up to `within` seconds (30 unless set) for one app's lines to hold it.
fn read_logs(h: &RunContext, sessions: LogSessions, opts: Map) -> R<Dynamic> {
    h.require_step("heroku::read_logs")?;
    value::check_keys(&opts, READ_LOGS_OPTIONS, "heroku::read_logs")?;
    let find = match opts.get("find") {
        None => None,
        Some(u) if u.is::<Placeholder>() => Some(None),
        Some(u) => Some(Some(u.clone().into_string().map_err(|_| {
            throw(
                "usage",
                "heroku::read_logs: option find must be a string (the text a line must hold)",
                None,
            )
        })?)),
    };
    let wait = match opts.get("within") {
        None => 30,
        Some(w) => w
            .as_int()
            .ok()
            .filter(|w| (0..=MOST_LOG_WAIT).contains(w))
            .ok_or_else(|| {
                throw(
                    "usage",
                    format!("heroku::read_logs: option within must be a whole number of seconds, 0 to {MOST_LOG_WAIT}"),
                    None,
                )
            })?,
    };
    if opts.contains_key("within") && !opts.contains_key("find") {
        return Err(throw(
            "usage",
            "heroku::read_logs: within is how long to wait for the line find names: give find too",
            None,
        ));
    }
    let Some(opening) = sessions.0.borrow_mut().take() else {
        return Err(throw(
            "usage",
            "heroku::read_logs: these log sessions have been read already (heroku::log_sessions again)",
            None,
        ));
    };
    let v = h.vendors()?;
    let label = format!("heroku logs {{{}}}", opening.apps.join(","));
    let apps = opening.apps.clone();
    match opening.sessions {
        Sessions::Read(mut answer) => {
            if find.is_some() {
                return Err(throw(
                    "usage",
                    "heroku::read_logs: find waits on tails: open them with heroku::log_sessions(apps, #{ tail: true })",
                    None,
                ));
            }
            let results = h.block(&label, async move {
                let opened = (&mut answer.0).await.map_err(opening_stopped)?;
                let opened: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<_, _>>> =
                    std::sync::Arc::new(std::sync::Mutex::new(opened.into_iter().collect()));
                Ok(fan_out(&v, &apps, move |v, app| {
                    let session = opened.lock().ok().and_then(|mut o| o.remove(&app));
                    async move {
                        match session {
                            Some(Ok(s)) => v.heroku().read_log_session(&s).await,
                            Some(Err(e)) => Err(e),
                            None => Err(not_opened(&app)),
                        }
                    }
                })
                .await)
            })?;
            Ok(logs_map(results))
        }
        Sessions::Tail(mut answer) => {
            let dry = h.dry_run() && find == Some(None);
            if dry {
                h.say().progress(format!(
                    "    [dry-run] would wait up to {wait}s for one app's log to show a line with a value known only after the skipped writes"
                ));
            }
            let text = find.clone().flatten();
            let tails = h.block(&label, async move {
                let opened = (&mut answer.0).await.map_err(opening_stopped)?;
                let mut opened: std::collections::HashMap<_, _> = opened.into_iter().collect();
                let mut tails: Vec<(String, Result<_, _>)> = apps
                    .iter()
                    .map(|app| {
                        let t = opened.remove(app).unwrap_or_else(|| Err(not_opened(app)));
                        (app.clone(), t)
                    })
                    .collect();
                if let Some(text) = &text {
                    wait_for_line(
                        &mut tails,
                        text,
                        std::time::Duration::from_secs(wait as u64),
                    )
                    .await;
                }
                Ok(tails)
            })?;
            let mut out = Map::new();
            for (app, tail) in tails {
                let entry = match tail {
                    Ok(mut tail) => {
                        let mut entry = Map::new();
                        if dry {
                            entry.insert("found".into(), true.into());
                        } else if let Some(Some(text)) = &find {
                            entry.insert("found".into(), tail.shows(text).into());
                        }
                        let got = tail.lines();
                        entry.insert("dropped".into(), (got.dropped as i64).into());
                        entry.insert("reopened".into(), (got.reopened as i64).into());
                        entry.insert("gap".into(), got.gap.into());
                        if let Some(why) = got.ended {
                            entry.insert("ended".into(), why.into());
                        }
                        entry.insert("lines".into(), log_lines(got.lines).into());
                        entry
                    }
                    Err(e) => error_entry(&e),
                };
                out.insert(app.as_str().into(), entry.into());
            }
            Ok(out.into())
        }
    }
}

fn not_opened(app: &str) -> runbook_vendors::VendorError {
    runbook_vendors::VendorError::new(
        "heroku",
        "POST",
        format!("/apps/{app}/log-sessions"),
        runbook_vendors::ErrorKind::Other,
        "no session was opened",
    )
}

/// The longest `read_logs` waits for a line (a Heroku log session's hour).
const MOST_LOG_WAIT: i64 = 3600;

/// Waits until one tail has brought a line holding `text`, every tail has ended, or `wait`
/// has passed.
async fn wait_for_line(
    tails: &mut [(
        String,
        Result<runbook_vendors::heroku::LogTail, runbook_vendors::VendorError>,
    )],
    text: &str,
    wait: std::time::Duration,
) {
    let now = tokio::time::Instant::now();
    let deadline = now.checked_add(wait).unwrap_or(now);
    loop {
        let mut open: Vec<&mut runbook_vendors::heroku::LogTail> = tails
            .iter_mut()
            .filter_map(|(_, t)| t.as_mut().ok())
            .collect();
        if open.iter_mut().any(|t| t.shows(text)) || open.iter().all(|t| t.ended()) {
            return;
        }
        let mut changes: Vec<_> = open.into_iter().map(|t| Box::pin(t.changed())).collect();
        let more = std::future::poll_fn(|cx| {
            let any = changes
                .iter_mut()
                .any(|c| std::future::Future::poll(c.as_mut(), cx).is_ready());
            if any {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        tokio::select! {
            _ = more => {}
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// The options maps' keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const WAIT_UP_OPTIONS: &[&str] = &["timeout", "releases", "preboot_window"];
pub(crate) const HOLDERS_OPTIONS: &[&str] = &["apps"];
pub(crate) const RELEASES_OPTIONS: &[&str] = &["newest"];
pub(crate) const LOGS_OPTIONS: &[&str] = &["lines"];
pub(crate) const LOG_SESSIONS_OPTIONS: &[&str] = &["lines", "tail"];
pub(crate) const READ_LOGS_OPTIONS: &[&str] = &["find", "within"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Heroku.name());
    m.add(
        "config",
        Effect::Read,
        &["app: string"],
        "Map",
        "An app's config vars, by name: a credential (by its name, its shape, or a value the run\nholds as a Secret) is a Secret; a plain setting (`AWS_REGION`, `RAPTOR_ENV`, a word-like\nvalue) is text, to print and compare; `masking` in `runbook(...)` says otherwise where names\nmislead.",
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
        "Map",
        "Waits until every dyno of the apps is up (a restart answers 202 before the dynos boot),\npolling GET /apps/{app}/dynos with backoff (100 ms, doubling to 2 s). Options: #{timeout:\nseconds (default 120), releases: #{app: version}: an app's dynos count only when they run\nthat release or a later one (the one with the new config), not an older one still up;\nor releases: \"newest\": each app's newest release, read beside each poll (the first one\nincluded) until it has succeeded (every poll with preboot): while it is pending (its release command runs, up to 10 minutes, on top of\ntimeout) the dynos run the one before and only the release is polled; one that failed\nits release phase fails the wait at once, saying what to fix (in an undo: that the dynos\nmay still hold the value being rolled back);\none-off dynos (run, scheduler, release, of a type the formation does not run) keep theirs\nand are not waited for; preboot_window:\nseconds (default RUNBOOK_HEROKU_PREBOOT_WINDOW, else 180: Heroku's boot timeout + 2\nminutes)}. On an app with preboot\n(GET /apps/{app}/features/preboot) Heroku lists only the new dynos while the old web ones\nkeep the traffic, on the old config, for that window after the change: once the new dynos\nare up it waits out the rest (from the newest release or, if later, the newest web dyno's\nup, plus 30 s), counted on Heroku's clock, on top of timeout. One-off dynos from before the\nchange are named, not waited for. The formation\n(GET /apps/{app}/formation) is read with the first poll that lists no dyno, or a dyno of a\none-off type: an app it asks no dyno of is scaled to zero, runs nothing to wait for, and\nis said so. Fails naming the apps still starting, crashed or on an older release. Returns #{one_offs:\n[#{app, dyno, state, release}]}: the one-offs seen on a release before the one waited for\n(they keep the old config until they exit: a revoke breaks them); only with releases, which\nsay which release is before.",
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
                with_run(&c, "heroku::releases", |h| {
                    releases_of(h, Dynamic::from(a), Map::new())
                }),
            )
        },
    )
    .at_once("each app");
    m.add(
        "releases",
        Effect::Read,
        &["apps: Array", "options: Map"],
        "Map",
        "Several apps' releases, read concurrently: #{app: [release, ...]}, oldest first.\nOptions: #{newest: N}: only each app's newest N (1 to 1000), one request each; without it\nevery release, page after page (an app's history can be thousands).",
        |c: NativeCallContext, a: Array, o: Map| {
            value::at(
                &c,
                with_run(&c, "heroku::releases", |h| {
                    releases_of(h, Dynamic::from(a), o)
                }),
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
        "Opens a log session for each app and returns at once; `heroku::read_logs(sessions)` reads\nthem. A session's lines are those logged when it is read, so opening them before what they\nshould show (a test email) saves a round and misses nothing. Opening one changes nothing at\nHeroku; one unused for about five minutes expires, and is opened again when read.\nWith tail: true it is `heroku logs --tail`: the last lines, then each line as it is logged,\nkept until read (the newest, up to RUNBOOK_MAX_RESPONSE_MB; a Fir app's tail has no\nhistory, only what comes after it opened), so `read_logs` can wait for a line; a stream\nthat ends is opened again (three times at most) without repeating the lines kept.\nOptions: #{lines (default 100), tail (default false)}.",
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
        "The lines of the sessions `heroku::log_sessions` opened, every app's at once: what\n`heroku::logs(apps, options)` returns; of tails, what `read_logs(sessions, #{})` returns.",
        |c: NativeCallContext, s: LogSessions| {
            value::at(
                &c,
                with_run(&c, "heroku::read_logs", |h| read_logs(h, s, Map::new())),
            )
        },
    )
    .at_once("each app");
    m.add(
        "read_logs",
        Effect::Read,
        &["sessions: LogSessions", "options: Map"],
        "Map",
        "The lines of the sessions `heroku::log_sessions` opened, every app's at once. Of tails\n(tail: true): what each has brought, as #{lines, dropped (the oldest let go), reopened\n(how often its stream ended and was opened again), gap (lines may have been logged\nwhile it was closed: the new session's history did not reach back, as a Fir app's never\ndoes), ended (why the stream ended for good,\nif it did)}, or #{status, message} for one that did not open (status 0: no answer).\nOptions: #{find: text, within: seconds (default 30, at most 3600)}: first waits until one\napp's tail brings a line holding `find` (each entry then has `found`), every tail has\nended, or the wait is over; a line not found is the script's to judge. Under --dry-run,\na `find` only the skipped writes would give is not waited for, and `found` is true.",
        |c: NativeCallContext, s: LogSessions, o: Map| {
            value::at(&c, with_run(&c, "heroku::read_logs", |h| read_logs(h, s, o)))
        },
    )
    .at_once("each app");
    m.finish();
    crate::engine::registry::opaque_type::<LogSessions>(
        reg,
        "LogSessions",
        "Heroku log sessions being opened",
        "keep them in a variable of the step that reads them (heroku::read_logs)",
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

    /// The preboot window is counted on Heroku's clock, to Heroku's answer, from the later
    /// of the change (the newest release) and the newest web dyno's `up`, with 30 s more;
    /// the whole window when neither time is known, none once it has passed. Worker dynos
    /// do not count: preboot is for web ones.
    #[test]
    fn preboot_left_counts_on_herokus_clock_from_the_change_or_the_newest_web_dyno() {
        use super::preboot_left;
        use runbook_vendors::heroku::{Dynos, Release};
        use std::time::Duration;
        let at = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        };
        let with = |name: &str, kind: &str, up: &str| D {
            updated_at: Some(up.into()),
            ..dyno(name, Some(kind), "up", Some(4))
        };
        let release = |created: &str| Release {
            id: "r".into(),
            version: 4,
            description: String::new(),
            status: "succeeded".into(),
            created_at: created.into(),
            current: true,
            user: None,
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
        // From the newest web dyno: 180 + 30 - 50.
        assert_eq!(preboot_left(&dynos, None, window), Duration::from_secs(160));
        let earlier = release("2026-12-05T11:59:50Z");
        assert_eq!(
            preboot_left(&dynos, Some(&earlier), window),
            Duration::from_secs(160)
        );
        // A dyno list that still shows the dynos from before the change: from the change.
        let later = release("2026-12-05T12:00:40Z");
        assert_eq!(
            preboot_left(&dynos, Some(&later), window),
            Duration::from_secs(190)
        );
        let late = Dynos {
            answered_at: at("2026-12-05T12:05:00Z"),
            ..dynos.clone()
        };
        assert_eq!(preboot_left(&late, None, window), Duration::ZERO);
        let unsaid = Dynos {
            answered_at: None,
            ..dynos.clone()
        };
        assert_eq!(
            preboot_left(&unsaid, Some(&later), window),
            Duration::from_secs(210)
        );
        let mut no_time = dynos;
        no_time.list[0].updated_at = None;
        assert_eq!(
            preboot_left(&no_time, None, window),
            Duration::from_secs(210)
        );
        assert_eq!(
            preboot_left(&no_time, Some(&later), window),
            Duration::from_secs(190)
        );
    }

    #[test]
    fn a_dyno_counts_when_up_on_the_release_waited_for() {
        let web = |state, v| dyno("web.1", Some("web"), state, v);
        assert_eq!(
            dyno_waits(&web("up", Some(3)), None, false),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&web("up", Some(4)), Some(4), false),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&web("up", Some(5)), Some(4), false),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&web("up", Some(3)), Some(4), false),
            DynoWait::Waits("web.1 up on v3, not v4 yet".into())
        );
        assert_eq!(
            dyno_waits(&web("starting", Some(4)), Some(4), false),
            DynoWait::Waits("web.1 starting".into())
        );
        assert_eq!(
            dyno_waits(&web("up", None), Some(4), false),
            DynoWait::Unnamed
        );
        // A one-off started before the change: never waited for; said while it runs (up
        // or starting), not once it crashed or finished.
        assert_eq!(
            dyno_waits(
                &dyno("run.4823", Some("run"), "crashed", Some(3)),
                Some(4),
                true
            ),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(&dyno("run.4821", Some("run"), "up", Some(3)), Some(4), true),
            DynoWait::OneOffBefore(3)
        );
        assert_eq!(
            dyno_waits(
                &dyno("scheduler.1", None, "starting", Some(3)),
                Some(4),
                true
            ),
            DynoWait::OneOffBefore(3)
        );
        assert_eq!(
            dyno_waits(
                &dyno("run.4822", Some("run"), "starting", Some(4)),
                Some(4),
                true
            ),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(
                &dyno("release.7", Some("release"), "crashed", None),
                None,
                true
            ),
            DynoWait::Ready
        );
        assert_eq!(
            dyno_waits(
                &dyno("worker.1", Some("worker"), "up", Some(3)),
                Some(4),
                false
            ),
            DynoWait::Waits("worker.1 up on v3, not v4 yet".into())
        );
    }

    /// A one-off is a console, a scheduled job or a release command, by its type or (no
    /// type) its name, unless the formation runs that type: a Procfile process named
    /// `scheduler` (a clock) restarts with the app and is waited for.
    #[test]
    fn a_one_off_is_of_a_type_the_formation_does_not_run() {
        use super::is_one_off;
        use runbook_vendors::heroku::Formation;
        let web = Formation {
            kind: "web".into(),
            quantity: 2,
        };
        let clock = Formation {
            kind: "scheduler".into(),
            quantity: 1,
        };
        let console = dyno("run.4821", Some("run"), "up", Some(3));
        let job = dyno("scheduler.1", None, "up", Some(3));
        assert!(is_one_off(&console, std::slice::from_ref(&web)));
        assert!(is_one_off(&job, std::slice::from_ref(&web)));
        assert!(!is_one_off(&job, &[web.clone(), clock]));
        let idle_clock = Formation {
            kind: "scheduler".into(),
            quantity: 0,
        };
        assert!(is_one_off(&job, &[web.clone(), idle_clock]));
        assert!(!is_one_off(
            &dyno("web.1", Some("web"), "up", Some(3)),
            &[web]
        ));
    }
}

#[cfg(test)]
mod log_tests {
    /// An app logging a URL with the token in its query: the line comes to the script with
    /// the token masked. Before, the line was plain text, and `sub_string` or `split` on it
    /// handed a piece of the token on unmasked (cold review).
    #[test]
    fn a_registered_secret_in_a_log_line_comes_masked() {
        let token = "9d1c7e0a-5b3f-4c2d-8e6f-0a1b2c3d4e5f";
        runbook_secret::register(token);
        let line = format!(
            "2026-12-07T05:00:00+00:00 heroku[router]: at=info method=POST path=\"/hooks?token={token}\" status=200"
        );
        let got = super::log_lines(vec![line]);
        let text = got[0].to_string();
        assert!(!text.contains(&token[..8]), "{text}");
        assert!(text.contains("status=200"), "{text}");
    }
}
