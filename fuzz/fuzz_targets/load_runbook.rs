//! Any bytes as a runbook: loading must end in a plan or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::runbook::{lint, Runbook, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = SourceFile {
        path: "fuzz.rhai".into(),
        name: "fuzz.rhai".into(),
        text: text.to_string(),
    };
    if let Ok(loaded) = Runbook::load(file) {
        let _ = lint::lint(&loaded);
    }
});
