//! `audit::log(action, context)`: a runbook's own audit entry.

use super::{Effect, Stage, R};
use crate::engine::registry::{Registrar, Repeat};
use crate::value;
use rhai::{Map, NativeCallContext};

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module("audit");
    m.add(
        "log",
        Effect::Write,
        &["action: string", "context: Map"],
        "()",
        "Appends an entry to the audit log (actor, run, runbook, step, action, context).\nSecrets in the context are recorded as fingerprints. An entry over 256 KiB is refused:\nlog ids, counts and fingerprints rather than whole documents.",
        |c: NativeCallContext, action: &str, context: Map| -> R<()> {
            value::at(&c, log(&Stage::of(&c), action, context))
        },
    )
    .repeat(Repeat::Never)
    .no_undo("the audit log is append-only: an entry records the run, it is not a change to roll back");
    m.add(
        "logged",
        Effect::Read,
        &["action: string"],
        "bool",
        "Whether this run already wrote an audit entry with this action (a `verify` for audit\nsteps, so a resumed run does not log twice).",
        |c: NativeCallContext, action: &str| -> R<bool> {
            let Stage::Running(run) = Stage::of(&c) else {
                return Ok(false);
            };
            let run_id = &run.info().run_id;
            let action = crate::audit::Action::parse(action);
            // A log that cannot be read is no answer (a verify that fails is said, and the
            // step's doubt is settled another way), never "not logged".
            let entries = crate::audit::AuditLog::new(&run.parts().store)
                .entries_of(run_id)
                .map_err(|e| {
                    crate::value::throw(
                        "runbook::io",
                        format!("cannot read the audit log: {e}"),
                        None,
                    )
                })?;
            Ok(entries.iter().any(|e| e.event.action == action))
        },
    );
    m.finish();
}

/// A script error for an entry the audit log did not take, with the failure's own code:
/// an entry over the limit is the author's to shrink, a log that cannot be written the
/// operator's to fix.
fn audit_failed(e: crate::error::Error) -> Box<rhai::EvalAltResult> {
    use miette::Diagnostic;
    let code = e
        .code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "runbook::io".into());
    let help = e.help().map(|h| h.to_string());
    match e {
        crate::error::Error::AuditTooLarge { .. } => {
            crate::value::throw(&code, e.to_string(), help)
        }
        other => crate::value::throw(
            &code,
            format!("cannot write the audit log: {other}"),
            help.or_else(|| {
                Some("check that the state directory (RUNBOOK_STATE_DIR) is writable".into())
            }),
        ),
    }
}

fn log(stage: &Stage, action: &str, context: Map) -> R<()> {
    let run = stage.run("audit::log")?;
    let context = value::to_json(&context.into());
    if run.dry_run() {
        run.writes()
            .planned("audit::log", Effect::Write, action, context);
        return Ok(());
    }
    // A script's own entry over the limit is its author's to shrink: refuse it, don't cut it.
    let event = crate::audit::AuditEvent::Script {
        action: action.to_string(),
        context,
    };
    run.auditor()
        .entry(&run.step_name(), event)
        .map_err(audit_failed)
}
