//! Any text as an answers file, TOML and JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::prompt::Answers;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Answers::parse(text, Path::new("answers.toml"));
    let _ = Answers::parse(text, Path::new("answers.json"));
});
