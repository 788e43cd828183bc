//! Any text as a sandbox scenario (TOML, JSON) or a `--fault` rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_sandbox::{FaultRule, Scenario};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Scenario::from_toml(text);
    let _ = Scenario::from_json(text);
    let _ = FaultRule::parse(text);
});
