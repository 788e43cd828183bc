//! Command-line definitions (clap). Behaviour lives in `commands/`.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// The command line, with what is derived from the vendor specs (the variables each vendor
/// reads, in `exec --help` and the man page).
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("exec", |c| c.after_long_help(vendor_variables()))
}

/// Parses the process's arguments.
pub fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// The variables each vendor module reads, from its spec.
fn vendor_variables() -> String {
    let mut out = vec![
        "Vendors (the environment wins over ./runbook.toml [vendors], keys in lower case):"
            .to_string(),
    ];
    for s in &runbook_vendors::spec::SPECS {
        let mut parts = vec![format!(
            "{} (default {})",
            s.api.vars.join(" or "),
            s.api.default
        )];
        if let Some(d) = &s.dashboard {
            parts.push(format!(
                "dashboard {} (default {})",
                d.vars.join(" or "),
                d.default
            ));
        }
        for n in s.needs {
            parts.push(match n.or {
                [] => n.var.to_string(),
                or => format!("{} (or {})", n.var, or.join(" and ")),
            });
        }
        out.push(format!("  {:<10} {}", s.name, parts.join("; ")));
    }
    out.join("\n")
}

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Runs operational runbooks written as rhai scripts",
    long_about = "Runs operational runbooks written as rhai scripts.\n\nStart with: runbook exec postmark --sandbox --yes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a runbook step by step
    Exec(ExecArgs),
    /// Compile and lint runbooks without running them
    Check(CheckArgs),
    /// Print a runbook's plan: params, prerequisites, steps, undo, gotchas
    Show(ShowArgs),
    /// List the runbooks found in ./runbooks and RUNBOOK_PATH
    List(ListArgs),
    /// Run the simulated vendors on loopback until Ctrl-C, printing the exports that point
    /// a shell (and `runbook exec` without --sandbox) at them
    Sandbox(SandboxArgs),
    /// Recent runs: runbook, actor, start, status, last step
    Runs(RunsArgs),
    /// Continue a stopped or crashed run from its journal
    Resume(ResumeArgs),
    /// Undo every completed step of a run, newest first
    Rollback(ResumeArgs),
    /// End a stopped run that can neither resume nor roll back: record what it leaves in
    /// the world (and how to clean it up), release its lock; nothing at a vendor changes.
    /// A run whose journal cannot be read is ended in the audit log, its journal kept as is
    Abandon(AbandonArgs),
    /// Read or verify the audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Last rotation, cadence and due date of every runbook
    Due(DueArgs),
    /// Interactive: any expression, `:steps`, `:run STEP`, `:ctx`; piped stdin runs statements
    Repl(ReplArgs),
    /// Reference of every function a runbook can call (host and stdlib), from the metadata
    Api(ApiArgs),
    /// Render a runbook as an SOP page (Markdown, or HTML with --html)
    Doc(DocArgs),
    /// Print an answers file to fill in: every question the runbook can ask, by its id, with
    /// what answers it, each commented out
    Answers(AnswersArgs),
    /// Write a new runbook (and its sandbox scenario) from a template
    New(NewArgs),
    /// Every place a secret's current value lives: Heroku apps, Infisical copies, GitHub
    /// repositories (read-only; values are compared by keyed hash, never shown)
    Consumers(ConsumersArgs),
    /// Shell completion script for bash, zsh, fish, elvish or powershell, on stdout
    /// (e.g. `runbook completions bash > /etc/bash_completion.d/runbook`)
    Completions(CompletionsArgs),
    /// The manual page (roff), on stdout or, with --dir, one page per command
    Man(ManArgs),
    /// A run's evidence pack for auditors (JSON; --sign with an Ed25519 key), `keygen`, and
    /// `verify FILE --pubkey KEY`
    Evidence(EvidenceArgs),
    /// Approve the step a run is waiting at (four eyes: not as the run's own actor)
    Approve(ApproveArgs),
    /// Deny the step a run is waiting at; the run stops, recorded as denied
    Deny(DenyArgs),
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The waiting run (its banner and its "waiting for approval" line name it)
    pub run_id: String,
    /// Who approves, for the audit log (default: RUNBOOK_ACTOR, git user.email, USER@host);
    /// with an SSH key, it must be a principal the allowed signers file gives that key
    #[arg(long)]
    pub actor: Option<String>,
    /// Sign the decision with this SSH key (default: RUNBOOK_SSH_KEY, [identity] ssh_key)
    #[arg(long, value_name = "KEYFILE")]
    pub ssh_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    pub run_id: String,
    /// Why: recorded with the decision and shown to the operator
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub actor: Option<String>,
    /// Sign the decision with this SSH key (default: RUNBOOK_SSH_KEY, [identity] ssh_key)
    #[arg(long, value_name = "KEYFILE")]
    pub ssh_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub command: Option<EvidenceCommand>,
    /// The run (`runbook runs` lists them)
    pub run_id: Option<String>,
    /// Write the pack to FILE instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sign the pack with this private key (from `runbook evidence keygen`)
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Make a signing key pair: DIR/evidence.key (0600) and DIR/evidence.pub
    Keygen {
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Check a signed pack offline: exit 0 when its signature matches, 1 when it does not
    Verify {
        file: PathBuf,
        #[arg(long, value_name = "KEYFILE")]
        pubkey: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write runbook.1 and one runbook-COMMAND.1 per command into this folder
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConsumersArgs {
    /// The secret's name in Infisical (and of GitHub Actions secrets)
    pub secret: String,
    /// Take the value from this environment variable instead of Infisical
    #[arg(long, value_name = "VAR")]
    pub from_env: Option<String>,
    /// Infisical environment the value is read from
    #[arg(long, default_value = "prod")]
    pub env: String,
    /// Infisical folder the value is read from
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Infisical environments searched for copies (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "dev,staging,prod")]
    pub envs: Vec<String>,
    /// Look only at these Heroku apps (comma-separated; default: every app the key lists)
    #[arg(long, value_delimiter = ',')]
    pub apps: Vec<String>,
    /// Search the simulated vendors
    #[arg(long)]
    pub sandbox: bool,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// A runbook to load (its steps, params and functions)
    pub runbook: Option<String>,
    /// Start the simulated vendors and talk to them
    #[arg(long)]
    pub sandbox: bool,
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// Prompt answers keyed by prompt id (TOML or JSON)
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Answer confirmations with yes
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Open a stopped or failed run: its runbook, ctx and completed steps
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["runbook", "sandbox"])]
    pub attach: Option<String>,
    /// With --attach: accept a runbook that changed since the run, vendor endpoints other
    /// than those it started against (says what differs), or a run a later rotation
    /// superseded (its id typed back)
    #[arg(long, requires = "attach")]
    pub force: bool,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// One run's timeline: steps, writes with their outcome, retries, later attempts,
    /// durations and what it left in effect
    pub run_id: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// With RUN_ID: one self-contained HTML page with the run's timeline drawn as SVG
    /// (redirect it to a file: `runbook runs RUN_ID --html > run.html`)
    #[arg(long, requires = "run_id", conflicts_with = "json")]
    pub html: bool,
    /// How many runs to show, newest first
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run id (see `runbook runs`)
    pub run_id: String,
    /// Continue even though the runbook changed since the run, this shell points at other
    /// vendor endpoints than the run started against (says what differs), or a later
    /// rotation superseded the run (its id typed back)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Debug, Args)]
pub struct AbandonArgs {
    /// The run id (see `runbook runs`)
    pub run_id: String,
    /// Why the run is ended this way (journal, audit log and evidence keep it)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who abandons it, for the audit log (default: as for exec)
    #[arg(long)]
    pub actor: Option<String>,
    /// Take the run's lock from a holder that is gone (journalled and audited)
    #[arg(long)]
    pub break_lock: bool,
    /// With --break-lock: take this lease even though its holder is alive (the id the
    /// refusal prints, typed back)
    #[arg(long, value_name = "ID", requires = "break_lock")]
    pub lease_id: Option<String>,
    /// A journal this version cannot read because it holds records of a newer format:
    /// abandon it as damaged (its records unread). For a record whose version field was
    /// damaged, or a newer version that is not to be had; otherwise abandon it with the
    /// version that wrote it
    #[arg(long)]
    pub as_damaged: bool,
}

/// How a run is driven, for exec, resume and rollback alike.
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Answer confirmations with yes; on failure roll back (unless --no-rollback)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --yes, stop on failure instead of rolling back
    #[arg(long)]
    pub no_rollback: bool,
    /// Prompt answers keyed by prompt id (TOML or JSON)
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Who runs this, for the audit log (default: RUNBOOK_ACTOR, else git's user.email, else
    /// user@host)
    #[arg(long)]
    pub actor: Option<String>,
    /// Stream the run on stdout as JSON Lines: one object per event, the report last
    /// (`runbook api --stream-schema`)
    #[arg(long)]
    pub json: bool,
    /// Take the rotation's lock from a run whose holder is gone (journalled and audited)
    #[arg(long)]
    pub break_lock: bool,
    /// With --break-lock: take this lease even though its holder is alive (the id the
    /// refusal prints, typed back); the holder stops before its next write
    #[arg(long, value_name = "ID", requires = "break_lock")]
    pub lease_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries
    Show(AuditShowArgs),
    /// Check the hash chain and every run's journal under it: reports the first edited,
    /// removed or reordered entry or journal line
    Verify(AuditVerifyArgs),
    /// Print the chain's head signed with a key kept outside the store, to publish (a file,
    /// a commit, a ticket); `audit verify --head FILE --pubkey KEY` checks it later
    Head(AuditHeadArgs),
    /// Write the chain as JSONL, each entry exactly as stored: `audit verify --file` checks
    /// the export offline as `audit verify` checks the store
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Write to this file (refused if it exists) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditHeadArgs {
    /// The private key that signs the head (`runbook evidence keygen`); keep it off the
    /// database's machine
    #[arg(long, value_name = "KEY")]
    pub sign: std::path::PathBuf,
    /// Write to this file (refused if it exists) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// A head recorded earlier: a hash (a run prints the one it left) or a file written by
    /// `audit head`; fails if that entry is no longer in the log, which is how entries cut
    /// off the end, or a chain rewritten whole, are found
    #[arg(long, value_name = "HASH|FILE")]
    pub head: Option<String>,
    /// The public key a signed head (`--head FILE`) must be signed by
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<std::path::PathBuf>,
    /// Verify an export (`runbook audit export`) instead of this machine's store
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// Only entries with this action (e.g. secret.rotate.completed)
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339, or a date YYYY-MM-DD)
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DueArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Only this module: global, StepHandle, Ctx, Secret, a host module (heroku) or a stdlib
    /// module (rotation or std/rotation)
    pub module: Option<String>,
    /// Print Markdown (docs/api.md is this)
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print JSON: {"modules": [{name, kind, import?, doc, functions: [{name, signature, params, returns?, effect?, doc}]}]}
    #[arg(long)]
    pub json: bool,
    /// Write .d.rhai definition files for editor support into DIR instead
    #[arg(long, value_name = "DIR", conflicts_with_all = ["module", "markdown", "json"])]
    pub definitions: Option<PathBuf>,
    /// Print the JSON Schema of one line of the `--json` stream of exec, resume and rollback
    #[arg(long, conflicts_with_all = ["module", "markdown", "json", "definitions"])]
    pub stream_schema: bool,
}

#[derive(Debug, Args)]
pub struct DocArgs {
    /// A path, or a name looked up in ./runbooks then RUNBOOK_PATH
    pub runbook: String,
    /// A standalone HTML page instead of Markdown
    #[arg(long)]
    pub html: bool,
    /// Write to FILE instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnswersArgs {
    /// A path, or a name looked up in ./runbooks then RUNBOOK_PATH
    pub runbook: String,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The runbook's name (runbooks/NAME.rhai), or a path ending in .rhai
    pub name: String,
    /// Template: rotation (a vendor with a key API, the default), steps (plain steps with
    /// undo), or the name or path of an existing runbook to copy
    #[arg(long, value_name = "TEMPLATE", default_value = "rotation")]
    pub from: String,
}

/// Options shared by everything that starts the simulators.
#[derive(Debug, Args, Clone, Default)]
pub struct ScenarioArgs {
    /// Sandbox scenario (TOML or JSON) with the sections [postmark], [infisical], [heroku],
    /// [github], [[scripted]] and faults (every key: docs/authoring.md, "Scenario
    /// reference"; `runbook sandbox --schema`). Default: for exec and repl, the runbook's
    /// `sandbox/NAME.toml` when it has one; else the Postmark SOP's world
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Inject a fault: VENDOR[:METHOD][:PATH]=ACTION[:once|always|times=N|after=K|retry_after=S];
    /// ACTION is a status (500), drop, lost (served, then the answer dropped), committed[=5XX]
    /// (served, then a 5xx answered), stall, malformed or latency=MS
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print the scenario format as a JSON Schema and exit (docs/authoring.md, "Scenario
    /// reference", is rendered from it)
    #[arg(long)]
    pub schema: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A path, or a name looked up in ./runbooks then RUNBOOK_PATH
    pub runbook: String,
    /// Run against simulated vendors on loopback
    #[arg(long)]
    pub sandbox: bool,
    /// Run reads for real, record writes without performing them
    #[arg(long)]
    pub dry_run: bool,
    /// Set a param: NAME=VALUE (lists are comma-separated)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub run: RunFlags,
    /// Write the simulators' final state as JSON (with --sandbox)
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    pub sandbox_state: Option<PathBuf>,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Runbook files or folders (default: every runbook in ./runbooks and RUNBOOK_PATH)
    pub paths: Vec<String>,
    /// Print diagnostics as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub runbook: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}
