//! `runbook approve RUN_ID` and `runbook deny RUN_ID --reason ...`: the second pair of eyes.

use crate::cli::{ApproveArgs, DenyArgs};
use crate::error::{exit, Result};
use crate::ui;
use runbook_core::approval::{self, Decision};
use runbook_core::run;

pub fn approve(args: ApproveArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let by = settings.actor(args.actor.as_deref());
    let decision = Decision::Approved {
        by: by.clone(),
        at: run::now_rfc3339(),
    };
    let request = approval::decide(&crate::wiring::store(settings)?, &args.run_id, &decision)?;
    ui::out(&format!(
        "approved step '{}' of run {} (started by {}) as {by}",
        request.step, request.run_id, request.requested_by
    ));
    Ok(exit::OK)
}

pub fn deny(args: DenyArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let by = settings.actor(args.actor.as_deref());
    let decision = Decision::Denied {
        by: by.clone(),
        at: run::now_rfc3339(),
        reason: args.reason.clone(),
    };
    let request = approval::decide(&crate::wiring::store(settings)?, &args.run_id, &decision)?;
    ui::out(&format!(
        "denied step '{}' of run {} (started by {}) as {by}: {}",
        request.step, request.run_id, request.requested_by, args.reason
    ));
    Ok(exit::OK)
}
