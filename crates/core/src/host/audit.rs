//! `audit::log(action, context)`: a runbook's own audit entry.

use super::value::{self, throw};
use super::{Effect, Host, HostFn, ModuleBuilder};
use rhai::{Engine, EvalAltResult, Map, NativeCallContext};
use std::rc::Rc;

pub fn register(engine: &mut Engine, host: &Rc<Host>, registry: &mut Vec<HostFn>) {
    let mut m = ModuleBuilder::new("audit", registry);
    let h = host.clone();
    m.add(
        "log",
        Effect::Write,
        &["action: string", "context: Map"],
        "()",
        "Appends an entry to the audit log (actor, run, runbook, step, action, context).\nSecrets in the context are recorded as fingerprints.",
        move |c: NativeCallContext, action: &str, context: Map| -> Result<(), Box<EvalAltResult>> {
            value::at(&c, log(&h, action, context))
        },
    );
    let h = host.clone();
    m.add(
        "logged",
        Effect::Read,
        &["action: string"],
        "bool",
        "Whether this run already wrote an audit entry with this action (a `verify` for audit\nsteps, so a resumed run does not log twice).",
        move |action: &str| -> bool {
            let run_id = h.run.borrow().run_id.clone();
            let log = h.audit.borrow();
            log.as_ref()
                .and_then(|l| l.entries().ok())
                .unwrap_or_default()
                .iter()
                .any(|e| e["run_id"] == run_id.as_str() && e["action"] == action)
        },
    );
    m.finish(engine);
}

fn log(h: &Host, action: &str, context: Map) -> Result<(), Box<EvalAltResult>> {
    h.require_step("audit::log")?;
    let context = value::to_json(&context.into());
    if h.dry_run.get() {
        h.record_planned("audit::log", Effect::Write, action, context);
        return Ok(());
    }
    h.audit_event(action, context).map_err(|e| {
        throw(
            "usage",
            format!("cannot write the audit log: {e}"),
            Some("check that the state directory (RUNBOOK_STATE_DIR) is writable".into()),
        )
    })
}
