//! docs/authoring.md's examples are real: every ```rhai runbook block passes `runbook check`,
//! and those marked `sandbox` run with `exec --sandbox --yes`, with the ```toml scenario block
//! that follows them (before the next rhai block) as their sandbox world.

use crate::support::Test;

struct Block {
    info: String,
    text: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        info: info.trim().to_string(),
                        text: String::new(),
                        line: i + 1,
                    })
                }
            }
            continue;
        }
        if let Some(b) = current.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    out
}

#[test]
fn every_example_in_the_authoring_guide_checks_and_runs() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/authoring.md"),
    )
    .unwrap();
    let blocks = blocks(&guide);
    let mut failures = Vec::new();
    let (mut checked, mut ran) = (0, 0);
    for (i, b) in blocks.iter().enumerate() {
        let words: Vec<&str> = b.info.split_whitespace().collect();
        if words.first() != Some(&"rhai") {
            continue;
        }
        assert!(
            words.contains(&"runbook"),
            "docs/authoring.md:{}: a rhai block must be a complete runbook (```rhai runbook), so it can be tested",
            b.line
        );
        let scenario = blocks[i + 1..]
            .iter()
            .take_while(|n| !n.info.starts_with("rhai"))
            .find(|n| n.info == "toml scenario");
        let name = format!("guide-{}", b.line);
        let mut test = Test::new().file(&format!("runbooks/{name}.rhai"), &b.text);
        if let Some(s) = scenario {
            test = test.file(&format!("runbooks/sandbox/{name}.toml"), &s.text);
        }
        let out = test.args(&["check", &name]).run();
        checked += 1;
        if out.code != 0 {
            failures.push(format!(
                "docs/authoring.md:{}: `runbook check` failed:\n{}",
                b.line, out.stderr
            ));
            continue;
        }
        if !words.contains(&"sandbox") {
            continue;
        }
        let out = out
            .next()
            .args(&["exec", &name, "--sandbox", "--yes"])
            .run();
        ran += 1;
        if out.code != 0 {
            failures.push(format!(
                "docs/authoring.md:{}: `runbook exec --sandbox --yes` exited {}:\n{}\n{}",
                b.line, out.code, out.stdout, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        checked >= 7 && ran >= 7,
        "only {checked} examples checked, {ran} run"
    );
}
