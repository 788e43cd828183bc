//! The main diagnostics, exactly: what an operator or author reads when something is wrong.
//! Each is compared with tests/snapshots/NAME.txt (temp dirs, run ids, ports and durations
//! masked); `UPDATE_SNAPSHOTS=1` rewrites them after a deliberate change.

use crate::support::{exits_with, with_fixture, Test};

exits_with! {
    a_syntax_error_points_at_the_place_with_a_snippet:
        with_fixture("check", "syntax_error.rhai") => Usage,
        stderr_snapshot ["check_syntax_error"];

    the_author_lints_name_each_problem_and_its_fix:
        with_fixture("check", "author_lints.rhai") => Usage,
        stderr_snapshot ["check_author_lints"];

    a_prompt_without_an_answer_says_how_to_give_one:
        with_fixture("exec", "prompts.rhai") => Usage,
        stderr_snapshot ["exec_prompt_without_answer"];

    an_unknown_param_lists_the_declared_ones:
        Test::new().rehearse("postmark").args(&["--yes", "--param", "sever_name=x"]) => Usage,
        stderr_snapshot ["exec_unknown_param"];

    resuming_an_unknown_run_says_where_runs_are_listed:
        Test::new().args(&["resume", "20990101T000000000Z-abcdef"]) => Usage,
        stderr_snapshot ["resume_unknown_run"];

    /// A vendor failure at the first step: the vendor, route, status and message, where in
    /// the runbook, what to do, and that nothing was changed.
    a_vendor_refusal_names_the_vendor_route_and_next_step:
        Test::new()
            .rehearse("postmark")
            .args(&["--yes"])
            .canary()
            .args(&["--fault", "postmark:GET:/server=401:always"]) => StepFailed,
        stderr_snapshot ["exec_vendor_unauthorized"];
}
