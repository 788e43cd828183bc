//! Before any question: every vendor the runbook calls has its endpoint and credentials, so
//! a missing setting is found before the operator confirms prerequisites, not at step 1.

use crate::error::{Error, Result};
use crate::runbook::Runbook;
use rhai::Map;
use runbook_vendors::{Vendor, VendorConfig};

/// One setting a vendor still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub vendor: &'static str,
    pub variable: &'static str,
    pub what: &'static str,
}

/// What the vendors `runbook` calls still need. A setting a param supplies (a param bound
/// to that variable, resolved to a value) counts as given.
pub fn missing(runbook: &Runbook, config: &VendorConfig, params: &Map) -> Vec<Missing> {
    let plan = runbook.plan();
    let given_by_param = |variable: &str| {
        plan.params.iter().any(|p| {
            p.env.as_deref() == Some(variable)
                && params
                    .get(p.name.as_str())
                    .is_some_and(|v| !v.is_unit() && !v.to_string().trim().is_empty())
        })
    };
    runbook
        .vendor_modules()
        .into_iter()
        .filter_map(Vendor::from_name)
        .flat_map(|v| {
            config
                .missing(v)
                .into_iter()
                .map(move |(variable, what)| Missing {
                    vendor: v.name(),
                    variable,
                    what,
                })
        })
        .filter(|m| !given_by_param(m.variable))
        .collect()
}

/// The consumers' vendors: the stdlib calls them only for the consumers a runbook lists
/// (`std/rotation` reads Heroku apps when there are any). Infisical is not among them: the
/// stdlib's rotations always store there.
const CONSUMER_VENDORS: [&str; 2] = ["heroku", "github"];

/// Fails, naming every missing setting and how to give it, unless only vendors the runbook
/// marks optional lack something, or consumers' vendors that only the stdlib it imports
/// calls (a GitHub-only rotation through `std/rotation` never needs Heroku): then the
/// warnings to show.
pub fn check(runbook: &Runbook, config: &VendorConfig, params: &Map) -> Result<Vec<String>> {
    let declared = &runbook.plan().meta().optional_vendors;
    let own = runbook.own_vendor_modules();
    let optional = |vendor: &str| {
        declared.iter().any(|o| o == vendor)
            || (CONSUMER_VENDORS.contains(&vendor) && !own.contains(&vendor))
    };
    let (warn, stop): (Vec<Missing>, Vec<Missing>) = missing(runbook, config, params)
        .into_iter()
        .partition(|m| optional(m.vendor));
    let warnings = warn
        .iter()
        .map(|m| format!(
            "warning: {} is not set: steps that call {}:: will fail (the runbook calls it only in some runs)",
            m.variable, m.vendor
        ))
        .collect();
    if stop.is_empty() {
        return Ok(warnings);
    }
    let lines: Vec<String> = stop
        .iter()
        .map(|m| format!("  {} ({}): {}", m.variable, m.vendor, m.what))
        .collect();
    Err(Error::Preflight {
        runbook: runbook.plan().meta().id.clone(),
        count: stop.len(),
        list: lines.join("\n"),
    })
}
