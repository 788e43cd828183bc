//! Secrets never reach the screen or a file; they print masked and refuse concatenation.

use crate::support::Exit;
use crate::support::{Test, CANARIES};

#[test]
fn printing_a_secret_every_way_shows_only_the_mask() {
    let out = Test::new()
        .fixture("print_secret.rhai")
        .env("RUNBOOK_TEST_SECRET", CANARIES[0])
        .args(&["exec", "print_secret.rhai"])
        .run();
    // The step ends with fail(...) so the message path is covered too.
    out.exit(Exit::StepFailed);
    let masked = "secret(…cdef)";
    let progress_lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  | "))
        .collect();
    assert_eq!(progress_lines[0], format!("  | {masked}"));
    assert_eq!(progress_lines[1], format!("  | {masked}"));
    assert_eq!(progress_lines[2], format!("  | interpolated: {masked}"));
    out.stderr_has(&format!("failing with {masked} in the message"));
    let audit = out.state_file("audit.jsonl");
    assert!(audit.contains("\"secret\":\"sha256:"), "{audit}");
    assert!(audit.contains("\"source\":{\"kind\":\"env\",\"name\":\"RUNBOOK_TEST_SECRET\"}"));
}

#[test]
fn concatenating_a_secret_is_an_error() {
    let out = Test::new()
        .fixture("concat_secret.rhai")
        .env("RUNBOOK_TEST_SECRET", CANARIES[0])
        .args(&["exec", "concat_secret.rhai"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::secret::misuse")
        .stderr_has("concat_secret.rhai:4:28: a Secret cannot be concatenated with a string");
}

#[test]
fn missing_env_secret_says_what_to_export() {
    let out = Test::new()
        .fixture("print_secret.rhai")
        .args(&["exec", "print_secret.rhai"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("environment variable RUNBOOK_TEST_SECRET is not set")
        .stderr_has("export RUNBOOK_TEST_SECRET=...");
}

#[test]
fn a_secret_interpolated_into_a_vendor_bound_string_is_refused() {
    // `${t}` inside a string shows `secret(…cdef)`; sending that to a vendor would send
    // garbage (or, without the mask, the secret in a log): it is refused before any request.
    let out = Test::new()
        .fixture("interpolated_secret.rhai")
        .env("RUNBOOK_TEST_SECRET", CANARIES[0])
        .args(&["exec", "interpolated_secret.rhai"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::secret::misuse")
        .stderr_has(
            "interpolated_secret.rhai:4:11: a Secret was interpolated into header Authorization",
        )
        .stderr_has("pass the Secret value itself");
}
