//! `audit::log(action, context)`: a runbook's own audit entry.

use super::{Effect, RunContext, Stage, R};
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
            Ok(crate::audit::AuditLog::new(&run.parts().store)
                .entries()
                .unwrap_or_default()
                .iter()
                .any(|e| &e.run_id == run_id && e.action == action))
        },
    );
    m.finish();
}

fn log(stage: &Stage, action: &str, context: Map) -> R<()> {
    let run = stage.run("audit::log")?;
    let context = value::to_json(&context.into());
    if run.dry_run() {
        run.record_planned("audit::log", Effect::Write, action, context);
        return Ok(());
    }
    // A script's own entry over the limit is its author's to shrink: refuse it, don't cut it.
    run.auditor()
        .entry(
            &run.step_name(),
            crate::audit::Action::parse(action),
            context,
        )
        .map_err(RunContext::audit_failed)
}
