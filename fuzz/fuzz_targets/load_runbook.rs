//! Any bytes as a runbook: loading must end in a plan or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::prompt::Prompter;
use runbook_core::plan::{load, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = SourceFile {
        path: "fuzz.rhai".into(),
        name: "fuzz.rhai".into(),
        text: text.to_string(),
    };
    if let Ok(loaded) = load(file, Prompter::silent()) {
        let _ = runbook_core::plan::lint::lint(&loaded);
    }
});
