//! Start-up and load: `runbook --version`, `runbook show postmark`, and compiling and loading
//! the Postmark runbook in-process.

// A benchmark: a failure to set up is a panic with its reason.
#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use runbook_core::runbook::{Runbook, SourceFile};
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> std::path::PathBuf {
    // benches/run.sh builds the binary operators install (the dist profile) first; without
    // it, the release build.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dist = target.join("dist/runbook");
    if dist.exists() {
        return dist;
    }
    target.join("release/runbook")
}

fn startup(c: &mut Criterion) {
    let bin = binary();
    c.bench_function("runbook --version", |b| {
        b.iter(|| {
            Command::new(&bin)
                .arg("--version")
                .output()
                .expect("run runbook")
        })
    });
    c.bench_function("runbook show postmark", |b| {
        b.iter(|| {
            Command::new(&bin)
                .args(["show", "postmark"])
                .current_dir(root())
                .output()
                .expect("run runbook")
        })
    });
    let path = root().join("runbooks/postmark.rhai");
    let text = std::fs::read_to_string(&path).expect("read postmark.rhai");
    c.bench_function("load postmark.rhai (compile + plan)", |b| {
        b.iter(|| {
            let file = SourceFile {
                path: path.clone(),
                name: "postmark.rhai".into(),
                text: text.clone(),
            };
            Runbook::load(file).expect("postmark loads")
        })
    });
}

criterion_group!(benches, startup);
criterion_main!(benches);
