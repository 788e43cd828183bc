//! Every diagnostic code an operator or author can see, what it means and what to do. This
//! table is the one list: docs/errors.md is rendered from it, and a test fails when a code
//! appears in the sources but not here, or here but nowhere in the sources.

/// Who meets a code, and so where it is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Running a runbook: the command line, state, locks, journals.
    Run,
    /// A runbook's script: loading, running, `check`'s lints.
    Script,
    /// A vendor call (`runbook::vendor::KIND`).
    Vendor,
    /// Vendor configuration.
    Config,
    /// The simulated vendors.
    Sandbox,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::Run => "Running a runbook",
            Area::Script => "Scripts and `check`",
            Area::Vendor => "Vendor calls",
            Area::Config => "Vendor configuration",
            Area::Sandbox => "The sandbox",
        }
    }

    pub const ALL: [Area; 5] = [
        Area::Run,
        Area::Script,
        Area::Vendor,
        Area::Config,
        Area::Sandbox,
    ];
}

/// One code: where it belongs, what it means, what to do next.
#[derive(Debug, Clone, Copy)]
pub struct Code {
    pub code: &'static str,
    pub area: Area,
    pub meaning: &'static str,
    pub next: &'static str,
}

const fn c(code: &'static str, area: Area, meaning: &'static str, next: &'static str) -> Code {
    Code {
        code,
        area,
        meaning,
        next,
    }
}

use Area::*;

/// The catalogue, grouped by area.
pub const CATALOGUE: &[Code] = &[
    // Running a runbook.
    c("runbook::preflight::missing", Run, "A vendor the runbook calls has no credentials or project configured; found before any question or write.", "Set each variable the message lists (environment or runbook.toml [vendors]), then run again."),
    c("runbook::usage", Run, "The command line or an input file is wrong (exit 2).", "Follow the help line: it names the flag, param or file to fix."),
    c("runbook::not_found", Run, "No runbook has that name in ./runbooks or RUNBOOK_PATH.", "`runbook list` shows the runbooks found; pass a path, or set RUNBOOK_PATH."),
    c("runbook::io", Run, "A file could not be read or written (runbook, answers, state directory).", "Check the path and its permissions; the state directory is RUNBOOK_STATE_DIR."),
    c("runbook::state", Run, "The shared state database (RUNBOOK_STATE_URL or runbook.toml [state] url) cannot be reached, is too old, or has a newer schema than this runbook (exit 2); nothing was changed.", "Check that PostgreSQL runs and the URL is right; runbook never falls back to local files while a state URL is set. Upgrade runbook if its schema is newer."),
    c("runbook::lock::held", Run, "Another run of the same rotation holds its lock.", "Wait for it; if its process is gone, finish it with `runbook resume` or `rollback`, or take the lock with --break-lock (journalled)."),
    c("runbook::run::not_found", Run, "No journal for that run id in this state (this machine's directory, or the shared database).", "`runbook runs` lists the runs this machine knows."),
    c("runbook::run::changed", Run, "The runbook (or a module it imports) changed since the run started.", "Restore the text the run used, or pass --force to continue with the new one."),
    c("runbook::run::secret_mismatch", Run, "A secret supplied to resume is not the one the run used (fingerprints differ).", "Supply the value the run used; a different token would mix two rotations."),
    c("runbook::run::failed", Run, "A step failed and the run ended after rollback or stop (exit 1).", "Read the step's error above it; `runbook resume` or `rollback` continues from the journal."),
    c("runbook::journal::newer", Run, "A run's journal holds records of a newer format than this version reads: a newer runbook wrote the run (a colleague upgraded first). It is not damaged, and this version changes nothing in it.", "See, resume, roll back or abandon the run with that version or a later one; upgrade this one."),
    c("runbook::journal::gone", Run, "A run the audit log records has no journal any more (deleted or moved): it cannot be resumed, rolled back or abandoned.", "Restore the journal from a backup; otherwise put the vendors right by hand: `runbook audit show` lists what the run did."),
    c("runbook::journal::damaged", Run, "A run's journal cannot be read as this version writes it (damaged, or a record of an older format it cannot read).", "Inspect the file by hand; finish or undo the rotation with the vendors' own tools if needed; once the run is over, `runbook abandon RUN_ID --reason TEXT` ends it, keeping the journal as it is."),
    c("runbook::state::not_text", Run, "A journal or the audit log holds bytes that are not UTF-8 text: runbook writes them as text, so something else changed the file (a disk error, an editor, a bad copy).", "Keep a copy as it is and restore the file from a backup; `runbook audit verify` then checks the chain. A run that cannot be checked against it can be ended with `runbook abandon` once the vendors are put right by hand."),
    c("runbook::audit::too_large", Run, "An audit entry is larger than the per-entry limit (256 KiB) and was not written.", "Log a summary (ids, counts, fingerprints) instead of whole documents."),
    c("runbook::runtime", Run, "The I/O runtime could not start (threads or file descriptors).", "A system resource problem: retry, or raise the process limits."),
    c("runbook::internal", Run, "A bug: something the engine guarantees did not hold.", "Report it with the command you ran."),
    c("runbook::aborted", Run, "The operator said no to a confirmation or prerequisite, or nobody could answer it (no terminal, no `--answers` entry, no `--yes`: the message says how) (exit 3).", "Nothing after that point ran; `runbook resume` continues when ready, and asks again what was not answered yes."),
    c("runbook::timeout", Run, "A step ran past its wall-clock limit (default 10m, prompts excluded), or a runbook's top level past its 5s load budget.", "Raise the step's limit with .timeout(\"30m\") if it legitimately takes longer; move work out of the top level into a step."),
    c("runbook::interrupted", Run, "Ctrl-C (exit 130).", "The journal says where it stopped: `runbook resume` or `rollback`."),
    c("runbook::state::not_durable", Run, "A state file (a run's journal, the audit log) could not be made durable: an fsync failed, or the file was removed or replaced during the run. What was written to it since its last sync may be lost.", "Nothing more is recorded in it, so the run sends no vendor write. Check the disk (dmesg, df), then `runbook resume RUN_ID`: it reads what is on disk and checks each vendor."),
    c("runbook::state::records_lost", Run, "The state database no longer holds lines of the run it had acknowledged (a failover to a standby that had not received them): the run stopped rather than record over the gap.", "No vendor write is sent. Check each vendor the run writes to, then `runbook resume RUN_ID`: it reads what the database holds and checks the vendors. Use a synchronous standby."),
    c("runbook::state::unrecorded", Run, "A vendor write was not sent: its record could not be stored within the wait (a full or read-only disk, a database that is down; `[state] wait_seconds`), or another run took this run's lock.", "Nothing was sent. Once the state store answers, `runbook resume RUN_ID` goes on from the last recorded step; if another run holds the lock, see `runbook runs`."),
    c("runbook::prompt::bad_answer", Run, "An answer was given that cannot be what the question asks for (a pasted token that is not one), at a terminal three times or once in an answers file.", "Give the value asked for; the message says what was wrong and what the step may already have done (a token generated in a dashboard stays there)."),
    c("runbook::prompt::no_answer", Run, "A prompt needs an answer and there is no terminal, answers file entry or --yes.", "Add the prompt's id to a file passed with --answers, or run on a terminal."),
    // Scripts and check.
    c("runbook::script::parse", Script, "The script does not parse.", "Fix the syntax at the place shown; `runbook check` lists every problem."),
    c("runbook::script::encoding", Script, "The file is not UTF-8 text.", "Save the runbook as UTF-8."),
    c("runbook::limit::file_size", Run, "An input file (runbook, module, answers, scenario, runbook.toml) is over 8 MiB, or a journal over 512 MiB; it is refused unread.", "Check that the path names the file you meant."),
    c("runbook::repl::input", Run, "A line given to the REPL could not be read: it is not UTF-8 text (binary data, another encoding), or the input failed. Piped, it and the rest of the input are not run; at a terminal it is dropped, and three in a row end the session.", "Give the REPL text: convert the file (iconv), or paste the value into a file the runbook reads."),
    c("runbook::limit::repl_input", Run, "A REPL input (an unfinished block, call or string with its continuation lines) reached 1 MiB; it is dropped.", "Close the string or block; paste large data into a file the runbook reads instead."),
    c("runbook::limit::xml_depth", Run, "An XML response nests deeper than 64 levels; it is refused unread (no vendor answers this deep).", "Check the endpoint the runbook calls."),
    c("runbook::script::arithmetic", Script, "A number could not be parsed or computed (a division by zero, an overflow, text that is not a number); the value is not shown.", "Check the value before converting or computing with it."),
    c("runbook::script::import_cycle", Script, "A runbook or module imports itself, or modules import each other in a circle.", "Move what both need into a third module that imports neither."),
    c("runbook::script::import_depth", Script, "Imports nest deeper than 16 levels (a runbook, a module it imports, a module that one imports, …).", "Flatten the imports."),
    c("runbook::script::import", Script, "An import names a module that does not exist (or is outside the runbook's folder).", "Import `std/NAME` or a file next to the runbook."),
    c("runbook::script::unknown_function", Script, "No function matches the call at run time.", "Check the name and argument types; `runbook api` lists every host function."),
    c("runbook::script::undefined_variable", Script, "A variable is used before `let`.", "Declare it; values shared between steps live in `ctx`."),
    c("runbook::script::type_mismatch", Script, "A value has the wrong type for what is done with it.", "Check the types of the values used there."),
    c("runbook::script::missing_property", Script, "A map or object has no such property or index.", "Check the name; `print(value)` shows what a value holds."),
    c("runbook::script::operation_limit", Script, "The script ran too many operations (an endless loop?).", "Long waits belong in host functions such as checks::wait_until."),
    c("runbook::script::call_depth", Script, "Functions call each other too deeply (endless recursion?).", "Give the recursion a stopping condition."),
    c("runbook::script::too_large", Script, "A string, array or map is larger than the engine allows.", "Build large data in a host function."),
    c("runbook::script::exit", Script, "The script called exit().", "Use fail(message) to stop a step with an explanation."),
    c("runbook::script::runtime", Script, "Another error while the script ran.", "Read the message; the snippet shows where."),
    c("runbook::script::call_site", Script, "Where a failing function was called from (shown under the error).", "Follow the chain to the runbook line that started it."),
    c("runbook::plan::no_metadata", Script, "The runbook never calls runbook(#{ id, title, ... }).", "Start the script with runbook(#{ id: \"...\", title: \"...\" })."),
    c("runbook::plan::no_steps", Script, "The runbook declares no step.", "Add step(\"id\", \"title\", |ctx| { ... })."),
    c("runbook::plan::duplicate_step", Script, "Two steps share an id.", "Step ids must be unique: the journal and `:run` refer to them."),
    c("runbook::host::bad_argument", Script, "A host function was called wrongly (an unknown option, a value of the wrong kind, a call outside a step).", "The help says which argument; `runbook api` documents each function."),
    c("runbook::egress::undeclared", Script, "http:: was asked to reach a host the runbook's egress does not declare; nothing was sent.", "Declare it: runbook(#{ ..., egress: [\"api.example.com\"] }), or \"param:NAME\" for a host the operator gives."),
    c("runbook::secret::misuse", Script, "A Secret was concatenated, compared with text or interpolated into something bound for a vendor.", "Pass the Secret itself to the host function that needs it."),
    c("runbook::step::ensure_failed", Script, "An ensure(...) check failed.", "The message says what did not hold; fix the cause, then retry the step."),
    c("runbook::step::failed", Script, "A step called fail(...) or threw.", "The message and help come from the runbook."),
    c("runbook::check::failed", Script, "`check` found problems in a file (each one listed).", "Fix each problem listed under it."),
    c("runbook::check::unknown_function", Script, "A call to a function that does not exist.", "Check the spelling; vendor functions need their module, e.g. postmark::server(token)."),
    c("runbook::check::unknown_module", Script, "A call into a module that does not exist or is not imported.", "Use a host module or `import \"...\" as NAME`."),
    c("runbook::check::wrong_arity", Script, "A call with the wrong number of arguments.", "The help lists the arities that exist."),
    c("runbook::check::unknown_option", Script, "A literal options map has a key the function does not take (it would fail when the step runs).", "The help names the nearest known key and lists them all."),
    c("runbook::check::wrong_type", Script, "A literal argument of a kind the function does not take (a string where a Secret or a list goes, a number where text goes).", "`runbook api` shows the signature; a credential must be a Secret."),
    c("runbook::check::same_name_functions", Script, "Two scripts of a runbook (it, its modules, the stdlib) define a function with the same name and arity: rhai may run either where one is called.", "Rename one of them."),
    c("runbook::check::allow_without_reason", Script, "A `// check:allow(CODE)` comment that says nothing about why.", "Add the reason after it: // check:allow(CODE): why it is fine."),
    c("runbook::check::unused_allow", Script, "A `// check:allow(CODE)` comment that silences nothing (the problem is gone, or it is on another line).", "Remove it, or put it on the problem's line or alone on the line above."),
    c("runbook::check::param_without_help", Script, "A param has no help text.", "Add help: \"...\" so `show`, `doc` and the operator know it."),
    c("runbook::check::unused_param", Script, "A param no step uses.", "Use it or remove it."),
    c("runbook::check::ctx_read_before_set", Script, "A step reads a ctx value that no step up to it sets.", "Set it in that step or an earlier one (check the spelling), or read it with ctx.get(KEY, default)."),
    c("runbook::check::missing_metadata", Script, "A rotation runbook (with `secret`) has no cadence_days.", "Add cadence_days so `due` can tell when it is due."),
    c("runbook::check::missing_audit", Script, "A rotation runbook never calls audit::log.", "End with a step that records the rotation (std/rotation's steps do)."),
    c("runbook::check::write_without_undo", Script, "A step writes but has no undo and says nothing about going back.", "Add .undo(...), or .irreversible(why) with .confirm(...), or .no_undo(why)."),
    c("runbook::check::irreversible_without_confirm", Script, "An irreversible step asks for no confirmation.", "Add .confirm(\"...?\") before the point of no return."),
    c("runbook::check::secret_in_url", Script, "A Secret would be placed in a URL.", "Send it in a header or body; URLs end up in logs."),
    c("runbook::check::secret_in_print", Script, "A Secret is printed as text.", "Print its fingerprint() or masked() instead."),
    c("runbook::check::egress_missing", Script, "An http:: call goes to a host the runbook's egress does not allow: a param's default URL (in a runbook that calls http::), a URL written in the call, or a computed URL in a runbook that declares no egress. A rehearsal (loopback, always allowed) passes, production refuses the call mid-run.", "Declare it: egress: [\"param:NAME\"] for the host the operator gives, or the host itself."),
    c("runbook::check::secret_inside_ctx", Script, "A Secret is kept inside a map or list in ctx: the journal keeps only its fingerprint, so after a crash neither a resume nor an undo has its value.", "Keep each Secret the way back needs at the top of ctx (ctx.KEY_old = value), where a resume asks for it or recovers it."),
    // Vendor calls.
    c("runbook::vendor::unauthorized", Vendor, "The vendor rejected the credentials (401).", "Check the token or key the run used; the help names its source."),
    c("runbook::vendor::forbidden", Vendor, "The credentials lack a permission (403).", "Grant the scope the help names, or use a key that has it."),
    c("runbook::vendor::not_found", Vendor, "The vendor has no such resource (404).", "Check the name: app, server, project, path."),
    c("runbook::vendor::rate_limited", Vendor, "The vendor rate-limited the calls (429) and retries ran out.", "Wait and retry the step; lower RUNBOOK_CONCURRENCY for large fan-outs."),
    c("runbook::vendor::server", Vendor, "The vendor failed (5xx) after retries.", "Check the vendor's status page, then retry the step."),
    c("runbook::vendor::timeout", Vendor, "No answer within the timeout (RUNBOOK_HTTP_TIMEOUT_SECS).", "Retry; a write may have happened, so verify before repeating it."),
    c("runbook::vendor::connection", Vendor, "The connection failed (DNS, TLS, refused, dropped).", "Check the endpoint and the network; retry."),
    c("runbook::vendor::invalid_response", Vendor, "The vendor answered with something that is not what its API documents.", "Retry; if it persists, the endpoint may not be the vendor's."),
    c("runbook::vendor::refused", Vendor, "The engine refused to send the request (plain http:// to a non-loopback host, a redirect to another host with credentials, an https:// request when no root certificate could be read from the system).", "Use https://, or the vendor's own host; install the system's CA certificates (Debian: ca-certificates) or point SSL_CERT_FILE at a PEM bundle."),
    c("runbook::vendor::validation", Vendor, "The vendor rejected the request's content (400/409/422).", "The vendor's message says which field; fix the param or input."),
    c("runbook::vendor::config", Vendor, "A credential or endpoint the call needs is not configured.", "Set the variable the help names (or the [vendors] table of runbook.toml)."),
    c("runbook::vendor::other", Vendor, "Another vendor failure.", "Read the vendor's message."),
    c("runbook::vendor::error", Vendor, "A vendor failure thrown by a script.", "Read the message; it names the vendor and route."),
    c("runbook::vendor::pending_approval", Vendor, "Infisical filed the write as a change request (a secret-approval policy) and it was not merged in time.", "Have an approver merge the request the message names, then retry or resume; to abandon, close the request first, then roll back."),
    c("runbook::vendor::change_request_closed", Vendor, "An approver closed the Infisical change request a write was filed as, without merging it: the change was refused.", "Ask the approver why; `runbook resume` files a new request, `runbook rollback` undoes the run."),
    c("runbook::vendor::partial", Vendor, "A fan-out failed for some targets; the others were changed.", "Retry the step, or roll back to undo it on every target."),
    c("runbook::vendor::dashboard", Vendor, "A simulated dashboard refused a rehearsal action (e.g. the token limit).", "Read the message; in a real run these steps are the operator's."),
    // Configuration.
    c("runbook::config::invalid", Config, "A configuration variable has a value that is not valid.", "Fix the variable, or unset it to use the default."),
    c("runbook::config::file", Config, "The [vendors] table of runbook.toml cannot be read.", "Its keys are the environment variable names in lower case."),
    // The sandbox.
    c("runbook::sandbox::bind", Sandbox, "A simulator could not listen on 127.0.0.1.", "Check loopback networking."),
    c("runbook::sandbox::scenario", Sandbox, "The sandbox scenario file is not valid.", "See `runbook sandbox --help` for the scenario format."),
    c("runbook::sandbox::fault", Sandbox, "A --fault rule is not valid.", "Write VENDOR[:METHOD][:PATH]=ACTION[:once|always|times=N|after=K|retry_after=S]."),
    c("runbook::sandbox::token_limit", Sandbox, "The simulated Postmark server already holds its 3 API tokens.", "Delete an unused token first, as on the real dashboard."),
    c("runbook::sandbox::unknown_server", Sandbox, "No simulated Postmark server has that name.", "Check the server name against the scenario."),
    c("runbook::sandbox::unknown_token", Sandbox, "That token is not one of the simulated server's.", "Check which token the step meant."),
];

/// The catalogue as the Markdown page docs/errors.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Error codes\n\nEvery diagnostic `runbook` prints carries one of these codes. Generated from\n`crates/core/src/codes.rs` (a test keeps this page and the sources in step).\n\nExit codes: 0 success, 1 a step failed (after rollback or stop), 2 bad usage, bad config or a\nscript that does not compile, 3 stopped at a question (the operator said no, or nobody\ncould answer it), 130 interrupted. Which one a question nobody can answer gives depends on when\nit is known: before anything runs (`exec` without --yes, every question the runbook declares;\na resume's values) it is 2, refused at the start; a confirmation or checklist the run reaches\nis 3; a question a step asks from its body (`prompt::ask`) fails the step: 1.\n",
    );
    for area in Area::ALL {
        out.push_str(&format!(
            "\n## {}\n\n| code | meaning | what to do |\n| --- | --- | --- |\n",
            area.title()
        ));
        for code in CATALOGUE.iter().filter(|c| c.area == area) {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.code,
                code.meaning.replace('|', "\\|"),
                code.next.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let mut codes: Vec<&str> = CATALOGUE.iter().map(|c| c.code).collect();
        codes.sort();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code is listed twice");
    }
}
