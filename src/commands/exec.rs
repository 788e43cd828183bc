//! `runbook exec`, and what `resume` and `rollback` share with it: loading a runbook with
//! its prompter, the banner, and the closing summary and exit code.

use crate::cli::ExecArgs;
use crate::error::{exit, Error, Result};
use crate::settings::Settings;
use crate::{ui, wiring};
use runbook_core::exec::{self, params, NewRun, Report, RunStatus, Session, Start, Wiring};
use runbook_core::prompt::{Answers, Prompter};
use runbook_core::run::{self, Effect, Entry, Modes, Target};
use runbook_core::runbook::{Runbook, SourceFile};
use runbook_sandbox::Sandbox;
use std::path::{Path, PathBuf};

pub fn run(args: ExecArgs, settings: &Settings) -> Result<u8> {
    let path = settings.library.find(&args.runbook)?;
    super::sandbox::require_sandbox(args.sandbox, &args.scenario)?;
    // Asked now, answered while the runbook loads.
    let actor = settings.actor_lookup(args.run.actor.as_deref());
    let (runbook, prompter) = load(
        &path,
        args.run.answers.as_deref(),
        args.run.yes || args.dry_run,
    )?;
    // A judgement `--yes` does not make, with nobody at a terminal and no answer in the
    // file: refused now, not after the writes before it (before, the step failed there and
    // `--yes` rolled the whole rotation back).
    if !args.dry_run && !prompter.has_terminal() {
        if let Some(p) = runbook
            .unanswered_judgements(prompter.answered_ids())
            .first()
        {
            let what = match p.question.trim() {
                "" => String::new(),
                q => format!(": {q}"),
            };
            // An id the script computes (`….healthy`): the step's id stands for its start,
            // as std/rotation makes it.
            let id = match p.id.strip_prefix('…') {
                Some(rest) => format!("{}{rest}", p.step),
                None => p.id.clone(),
            };
            return Err(Error::usage(
                format!(
                    "step '{}' asks `{id}`, a judgement --yes does not make (only a person can see it{what}), and there is no terminal to ask on",
                    p.step
                ),
                format!(
                    "run at a terminal, or, once you can say it, add `\"{id}\" = true` to a file passed with --answers"
                ),
            ));
        }
    }
    // Against the declared params: an error names only those, never the text given.
    let pairs = params::parse_pairs(&args.params, runbook.plan())?;
    for warning in params::secrets_on_the_command_line(runbook.plan(), &pairs) {
        ui::err(&warning);
    }
    // A runbook's own sandbox scenario (sandbox/NAME.toml next to it) unless one is given.
    let mut scenario = args.scenario.clone();
    if args.sandbox && scenario.scenario.is_none() {
        scenario.scenario = super::sandbox::sibling_scenario(&path);
        if let Some(p) = &scenario.scenario {
            ui::progress(&ui::dim(&format!("sandbox: scenario {}", p.display())));
        }
    }
    let wired = wiring::services(settings, args.sandbox, &scenario)?;
    // A rehearsal's scenario may name the params of its world (`[params]`); `--param`
    // still wins (it comes later).
    let pairs = match (&scenario.scenario, args.sandbox) {
        (Some(file), true) => {
            let mut all = runbook_sandbox::Scenario::from_file(file)?.param_pairs();
            all.extend(pairs);
            all
        }
        _ => pairs,
    };
    let params = params::resolve(runbook.plan(), &pairs, &|name| wired.lookup(name))?;
    let shadowed = wiring::shadowed_params(settings, runbook.plan(), wired.env.as_ref());
    if !shadowed.is_empty() {
        ui::progress(&ui::dim(&format!(
            "sandbox: the sandbox's exports set {} (the shell's values are not used)",
            shadowed.join(", ")
        )));
    }
    // Before any question: a missing setting is found now, not at step 1.
    for warning in exec::preflight::check(&runbook, wired.services.config(), &params)? {
        ui::err(&warning);
    }
    // Then whether the questions can be answered at all: after the preflight, so its errors
    // are seen whatever the terminal, and before the run starts.
    if !runbook.plan().prerequisites.is_empty() && !prompter.can_confirm("prerequisites") {
        return Err(Error::usage(
            "prompt 'prerequisites' needs an answer, and there is no terminal to ask on",
            "confirm the prerequisites with --yes, or add `prerequisites = true` to a file passed with --answers",
        ));
    }
    // Where it goes, what it does and how it was entered are recorded apart: a rehearsal
    // never counts as a rotation.
    let modes = Modes {
        target: wired.target(&runbook, &params),
        effect: if args.dry_run {
            Effect::DryRun
        } else {
            Effect::Apply
        },
        entry: Entry::Exec,
    };
    let mut session = Session::start(
        runbook,
        NewRun {
            wiring: Wiring {
                store: crate::wiring::store(settings)?,
                actor: Settings::actor_found(actor)?,
                services: wired.services,
                prompter,
                sink: crate::view::sink(args.run.json),
                webhook: settings.audit_webhook(),
                break_lock: runbook_core::exec::lock::BreakLock::from_flags(
                    args.run.break_lock,
                    args.run.lease_id.clone(),
                ),
            },
            modes,
            params,
        },
    )?;
    let opts = exec::Options {
        yes: args.run.yes,
        no_rollback: args.run.no_rollback,
        dry_run: args.dry_run,
        json: args.run.json,
        approve_irreversible: settings.approval_policy()?,
        keys: settings.keys(None)?,
    };
    banner(&session, &scenario.faults);
    let actor = &session.run().info().actor;
    if modes.target == Target::Production
        && modes.effect == Effect::Apply
        && !run::actor_is_known(actor)
    {
        ui::err(&format!(
            "warning: who runs this is unknown, so the audit log records {actor}: pass --actor NAME, or set RUNBOOK_ACTOR (or git's user.email)"
        ));
    }
    let report = exec::run(&session, &opts, Start::Fresh);
    session.release_lock();
    session.end();
    let code = finish(&report, args.run.json)?;
    if let (Some(path), Some(sandbox)) = (args.sandbox_state.as_deref(), &wired.sandbox) {
        write_sandbox_state(sandbox, path)?;
    }
    Ok(code)
}

/// `--sandbox-state FILE`: the simulators' final state, for tests and post-mortems.
fn write_sandbox_state(sandbox: &Sandbox, path: &Path) -> Result<()> {
    let state = serde_json::to_string_pretty(&sandbox.state()).unwrap_or_default();
    runbook_core::state::write(path, state.as_bytes(), &|w| ui::err(&w)).map_err(|source| {
        Error::Core(runbook_core::error::Error::Write {
            path: PathBuf::from(path),
            source,
        })
    })
}

/// The operator as this command can reach them: answers file, `--yes`, the terminal.
pub fn prompter(answers: Option<&Path>, yes: bool) -> Result<Prompter> {
    let answers = match answers {
        Some(p) => Answers::load(p)?,
        None => Answers::default(),
    };
    Ok(Prompter::new(answers, yes, crate::terminal::tty()))
}

/// Loads a runbook (showing what its top level printed).
fn compile(file: SourceFile) -> Result<Runbook> {
    let runbook = Runbook::load(file)?;
    // Two of its scripts defining one function name: rhai may run either, so no run starts.
    if let Some(problem) = runbook_core::runbook::lint::ambiguous_functions(&runbook)
        .into_iter()
        .next()
    {
        return Err(runbook_core::error::Error::script(problem).into());
    }
    for text in runbook.printed() {
        ui::script_print(text);
    }
    Ok(runbook)
}

/// Reads and loads a runbook.
pub fn load_runbook(path: &Path) -> Result<Runbook> {
    compile(SourceFile::read(path)?)
}

/// Reads and loads a runbook, and the prompter its run will use (a bad answers file is
/// found before the runbook is compiled).
pub fn load(path: &Path, answers: Option<&Path>, yes: bool) -> Result<(Runbook, Prompter)> {
    let file = SourceFile::read(path)?;
    let given = answers.map(Answers::load).transpose()?;
    let runbook = compile(file)?;
    if let (Some(file), Some(given)) = (answers, &given) {
        check_answers(&runbook, file, given, yes)?;
    }
    let prompter = Prompter::new(given.unwrap_or_default(), yes, crate::terminal::tty());
    Ok((runbook, prompter))
}

/// An answers file's keys that answer no question of the runbook. One a letter or two from
/// a question it asks is a typo: with `--yes`, refused (the question the typo meant to
/// answer "no" would be answered yes). Any other is said: reading the script finds most
/// questions, not every one (a prompt whose options are computed, one in a closure).
pub fn check_answers(runbook: &Runbook, file: &Path, answers: &Answers, yes: bool) -> Result<()> {
    // `runbook answers` shows a part computed at run time as `…`: such a key answers no
    // question the run asks, and with --yes would leave it to --yes.
    if let Some(pattern) = answers.keys().find(|k| k.contains('…')) {
        let what = format!(
            "{}: `{pattern}` is a pattern (`…` is a part computed at run time), not the id of a question",
            file.display()
        );
        let help = "write the id the run asks (the run names it when it asks, or when it stops at it: e.g. `deactivate.healthy` for `….healthy` in a step `deactivate`)";
        if yes {
            return Err(Error::usage(what, help));
        }
        ui::err(&format!("warning: {what}; {help}"));
    }
    let unknown = runbook.unanswered_keys(answers.keys());
    if unknown.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = unknown
        .iter()
        .map(|(key, near)| match near {
            Some(near) => format!("`{key}` (did you mean `{near}`?)"),
            None => format!("`{key}`"),
        })
        .collect();
    let id = &runbook.plan().meta().id;
    let what = format!(
        "{}: {} answer{} no question of runbook {id}: {}",
        file.display(),
        if unknown.len() == 1 {
            "this key"
        } else {
            "these keys"
        },
        if unknown.len() == 1 { "s" } else { "" },
        listed.join(", ")
    );
    let typo = unknown.iter().find(|(_, near)| near.is_some());
    if let (true, Some((key, _))) = (yes, typo) {
        return Err(Error::usage(
            format!("{what}; with --yes, the question it was meant for would be answered yes"),
            format!("`runbook answers {id}` lists every question's id; correct or remove `{key}`"),
        ));
    }
    ui::err(&format!(
        "warning: {what} (as far as reading the runbook shows: a question whose id is computed may not be seen)"
    ));
    Ok(())
}

/// Where a run's calls go: the in-process simulators, this machine's loopback (a separate
/// `runbook sandbox`, or a local proxy), or production, with each vendor's endpoint.
pub fn destination(session: &Session, faults: &[String]) -> String {
    let services = session.run().services();
    let target = session.run().info().modes.target;
    let vendors: Vec<runbook_vendors::Vendor> = session
        .runbook()
        .vendor_modules()
        .into_iter()
        .filter_map(runbook_vendors::Vendor::from_name)
        .collect();
    let endpoints: Vec<String> = vendors
        .iter()
        .map(|v| {
            let config = services.config();
            // The dashboard is where the operator does what the API cannot.
            let dashboard = config
                .dashboard(*v)
                .map(|d| format!(" (dashboard {d})"))
                .unwrap_or_default();
            format!("{} {}{dashboard}", v.name(), config.endpoint(*v))
        })
        .collect();
    if target == Target::Sandbox {
        let faults = if faults.is_empty() {
            String::new()
        } else {
            format!(" · faults: {}", faults.join(", "))
        };
        return format!("SANDBOX · simulated vendors in this process{faults}");
    }
    if target == Target::Loopback {
        return format!(
            "LOOPBACK · every vendor endpoint is on this machine (a `runbook sandbox`, or a local proxy): {}",
            endpoints.join(" · ")
        );
    }
    if endpoints.is_empty() {
        "PRODUCTION · no vendor module".to_string()
    } else {
        format!("PRODUCTION · {}", endpoints.join(" · "))
    }
}

pub fn banner(session: &Session, faults: &[String]) {
    let meta = session.runbook().plan().meta();
    let info = session.run().info();
    if meta.id.is_empty() {
        // The REPL without a runbook.
        ui::progress(&ui::bold("runbook repl (no runbook loaded)"));
    } else {
        ui::progress(&ui::bold(&format!("{} ({})", meta.title, meta.id)));
    }
    ui::progress(&ui::bold(&destination(session, faults)));
    let egress = &session.run().policy().egress;
    ui::progress(&ui::dim(&format!(
        "egress: {}",
        runbook_core::plan::egress::summary(egress.hosts(), &session.runbook().vendor_modules())
    )));
    ui::progress(&ui::dim(&format!(
        "run {} · actor {}{}",
        info.run_id,
        info.actor,
        if info.modes.is_dry_run() {
            " · dry-run: writes are recorded, not performed"
        } else {
            ""
        }
    )));
}

/// The secrets a write's detail names, as `(field, hmac:…)` pairs in order (fingerprints,
/// never values): the change summary and the evidence pack show them.
pub fn fingerprints(detail: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut walk = vec![(String::new(), detail)];
    while let Some((key, v)) = walk.pop() {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter().rev() {
                    walk.push((k.clone(), x));
                }
            }
            serde_json::Value::Array(a) => {
                for x in a.iter().rev() {
                    walk.push((key.clone(), x));
                }
            }
            serde_json::Value::String(s) if s.starts_with("hmac:") || s.starts_with("sha256:") => {
                out.push((key, s.clone()));
            }
            _ => {}
        }
    }
    out
}

/// How a write ended, as the summary and the timeline say it.
pub fn outcome_text(
    outcome: runbook_core::events::WriteOutcome,
    filed: Option<&runbook_core::events::Filed>,
) -> String {
    use runbook_core::events::WriteOutcome;
    match outcome {
        WriteOutcome::Applied => "applied".to_string(),
        WriteOutcome::Unknown => {
            "outcome unknown (sent; answer lost, or a server error)".to_string()
        }
        WriteOutcome::Pending => format!(
            "pending approval{}",
            filed.map(|f| format!(" ({})", f.slug)).unwrap_or_default()
        ),
        WriteOutcome::Failed => "refused".to_string(),
        WriteOutcome::NotSent => "not sent".to_string(),
    }
}

/// Prints the summary (and, with `--json`, ends the stream with the report) and maps the
/// run's status to the exit code.
pub fn finish(report: &Report, json: bool) -> Result<u8> {
    summary(report);
    if json {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), "report".into());
        if let serde_json::Value::Object(fields) = serde_json::to_value(report).unwrap_or_default()
        {
            body.extend(fields);
        }
        crate::view::line(crate::view::stamped(
            &report.run_id,
            serde_json::Value::Object(body),
        ));
    }
    Ok(match report.status {
        RunStatus::Succeeded => exit::OK,
        // `runbook rollback` asked for it: success. After a failed step: the step failed.
        // What someone changed since the run was left alone on purpose: the run's own
        // changes are undone.
        RunStatus::RolledBack | RunStatus::PartlyRolledBack if report.failed_step.is_none() => {
            exit::OK
        }
        RunStatus::Aborted => exit::ABORTED,
        RunStatus::Interrupted => exit::INTERRUPTED,
        RunStatus::Failed
        | RunStatus::RolledBack
        | RunStatus::PartlyRolledBack
        | RunStatus::Running => exit::STEP_FAILED,
    })
}

fn summary(report: &Report) {
    ui::progress("");
    let secs = report.duration_ms as f64 / 1000.0;
    // A resumed run took more than this session: say so, with the whole run's step time.
    let across = if report.processes > 1 {
        let here: u64 = report.steps.iter().map(|s| s.duration_ms).sum();
        format!(
            " (this session; {:.1}s in steps across {} sessions)",
            (report.earlier_step_ms + here) as f64 / 1000.0,
            report.processes
        )
    } else {
        String::new()
    };
    let line = match (&report.status, &report.failed_step) {
        // A later process that started no step and no undo: the run is as it was, not
        // ended (a rollback nobody confirmed said "Run … aborted" of a split rotation).
        (status, _) if report.changed_nothing => format!(
            "Run {}: nothing was done in this session ({}); the run stands as it was",
            report.run_id,
            status.as_str()
        ),
        (RunStatus::Succeeded, _) => {
            format!("Run {} succeeded in {secs:.1}s{across}", report.run_id)
        }
        (status, Some(step)) => format!(
            "Run {} {} (step '{step}' failed) after {secs:.1}s{across}",
            report.run_id,
            status.as_str()
        ),
        (status, None) => format!(
            "Run {} {} after {secs:.1}s{across}",
            report.run_id,
            status.as_str()
        ),
    };
    ui::progress(&ui::bold(&line));
    if !report.changes.is_empty() {
        let heading = match report.status {
            RunStatus::Succeeded => "Changed:",
            _ => "Left in place (changed, not undone):",
        };
        ui::progress(heading);
        for w in &report.changes {
            let state = outcome_text(w.outcome, w.filed.as_ref());
            let values: Vec<String> = fingerprints(&w.detail)
                .into_iter()
                .map(|(k, fp)| format!("{k}={fp}"))
                .collect();
            ui::progress(&format!(
                "  {} · {} on {}{}: {state}",
                w.step,
                w.function,
                w.target,
                if values.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", values.join(", "))
                }
            ));
        }
    }
    let undone = report.undone();
    if !undone.is_empty() {
        // A step whose targets someone changed since had those left alone: "undone" alone
        // read as if it put everything back (a fault review).
        let named: Vec<String> = undone
            .iter()
            .map(|step| {
                if report.left_alone.iter().any(|r| r.step == *step) {
                    format!("{step} (except what is left alone, below)")
                } else if report.kept.iter().any(|k| k.step == *step) {
                    format!("{step} (except what it left, below)")
                } else {
                    step.to_string()
                }
            })
            .collect();
        ui::progress(&format!("Undone: {}", named.join(", ")));
    }
    // A live credential an undo keeps for diagnosis was named only in a printed line.
    if !report.kept.is_empty() {
        ui::progress("Left at the vendors by an undo, on purpose (not undone):");
        for k in &report.kept {
            ui::progress(&format!("  {} · {}", k.step, k.what));
        }
    }
    // Named in a warning above, and easy to lose: a partial rollback's summary lists them.
    if !report.left_alone.is_empty() {
        ui::progress("Left alone (changed by someone since the run; not undone, not overwritten):");
        for r in &report.left_alone {
            ui::progress(&format!(
                "  {} · {} on {}: {}",
                r.step,
                r.function,
                r.target,
                r.now.as_deref().unwrap_or("changed")
            ));
        }
    }
    if report.rate_limit_wait_ms > 0 {
        ui::progress(&format!(
            "Waited {:.1}s for vendor rate limits (requests paced to Heroku's pool, or refused and retried)",
            report.rate_limit_wait_ms as f64 / 1000.0
        ));
    }
    if let Some(head) = &report.audit_head {
        ui::progress(&format!(
            "Audit head: {head} (keep it: `runbook audit verify --head {head}` proves no entry was removed from the end)"
        ));
    }
    if !report.planned_writes.is_empty() {
        ui::progress(&format!(
            "Dry run: {} write(s) would have been made:",
            report.planned_writes.len()
        ));
        for w in &report.planned_writes {
            ui::progress(&format!("  - [{}] {} → {}", w.step, w.function, w.target));
        }
    }
}
