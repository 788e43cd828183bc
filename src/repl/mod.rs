//! `runbook repl`: any expression with every host module, one step of a runbook at a time,
//! with the same redaction, confirmations, journal and audit as `exec` (the same session
//! and step executor).

mod helper;
mod history;

pub use helper::is_incomplete;

use crate::cli::ReplArgs;
use crate::commands::exec::prompter;
use crate::error::{exit, Result};
use crate::settings::Settings;
use crate::ui;
use crate::wiring::{self, EnvVars};
use helper::{ReplHelper, COMMANDS};
use rhai::{Dynamic, EvalAltResult, Scope, AST};
use runbook_core::diagnostic::ScriptError;
use runbook_core::events::Event;
use runbook_core::exec::step::{self, Confirmation, Direction};
use runbook_core::exec::{params, NewRun, Outcome, Session, Wiring};
use runbook_core::host::Phase;
use runbook_core::run::{Effect, Entry, Modes};
use runbook_core::runbook::Runbook;
use runbook_core::value;
use runbook_sandbox::Sandbox;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Ran, or failed as it ran.
    Done,
    /// Did not compile (so nothing ran).
    NotCompiled,
    /// Refused text where a Secret belongs: the text is likely a pasted credential.
    TextForASecret,
    /// `:quit`: the session ends.
    Quit,
}

/// The largest REPL input, continuation lines included.
const MAX_INPUT_BYTES: usize = 1 << 20;

/// rhai's own functions a REPL user types most, for "did you mean".
const BUILTINS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "len",
    "to_string",
    "to_int",
    "to_float",
    "parse_int",
    "parse_float",
    "contains",
    "keys",
    "values",
    "push",
    "split",
    "trim",
    "sub_string",
    "starts_with",
    "ends_with",
    "index_of",
    "to_upper",
    "to_lower",
    "replace",
    "is_empty",
];

struct Repl<'a> {
    settings: &'a Settings,
    session: Session,
    scope: Scope<'static>,
    /// Functions defined so far: the runbook's and the session's.
    fns: AST,
    /// Step id → "done" / "undone" (this session, or the attached run's journal).
    marks: BTreeMap<String, &'static str>,
    /// The simulators of a `--sandbox` session.
    sandbox: Option<Sandbox>,
    path: Option<PathBuf>,
    pairs: Vec<(String, String)>,
    env: Option<EnvVars>,
    answers: Option<PathBuf>,
    yes: bool,
    failures: usize,
    /// `:confirm always`: production writes typed here stop asking, for this session.
    confirm_always: bool,
    /// `--attach RUN_ID`: the run whose runbook, params and ctx this session goes on with.
    attached: Option<String>,
    /// An input was interrupted (Ctrl-C, SIGTERM, SIGHUP): a piped session runs no more.
    interrupted: bool,
    /// Reading statements from a pipe, not a terminal.
    piped: bool,
    /// The session's failed inputs when its current run started (`:load` starts another):
    /// each run records its own.
    failures_before_run: usize,
    /// How many writes the run's journal held when the current input began: an input
    /// interrupted names those it sent whose outcome is unknown.
    writes_at_input: usize,
}

pub fn run(args: ReplArgs, settings: &Settings) -> Result<u8> {
    crate::commands::sandbox::require_sandbox(args.sandbox, &args.scenario)?;
    // A policy that cannot be read refuses the session, as it refuses exec: read as "no
    // policy", it would let `:run` take an irreversible step without an approval.
    settings.approval_policy()?;
    let state_dir = settings.state_dir.clone();
    let mut repl = match &args.attach {
        Some(run_id) => attach(&args, run_id, settings)?,
        None => start(&args, settings)?,
    };
    let code = if std::io::stdin().is_terminal() {
        repl.interactive(&state_dir)
    } else {
        repl.piped()
    };
    repl.end_run();
    Ok(code)
}

fn start<'a>(args: &ReplArgs, settings: &'a Settings) -> Result<Repl<'a>> {
    let path = match &args.runbook {
        Some(name) => Some(settings.library.find(name)?),
        None => None,
    };
    let runbook = open_runbook(path.as_deref())?;
    // Against the declared params: an error names only those, never the text given.
    let pairs = params::parse_pairs(&args.params, runbook.plan())?;
    for warning in params::secrets_on_the_command_line(runbook.plan(), &pairs) {
        ui::err(&warning);
    }
    // As exec: the runbook's own scenario (sandbox/NAME.toml beside it) unless one is given.
    let mut scenario = args.scenario.clone();
    if args.sandbox && scenario.scenario.is_none() {
        scenario.scenario = path
            .as_deref()
            .and_then(crate::commands::sandbox::sibling_scenario);
        if let Some(p) = &scenario.scenario {
            ui::progress(&ui::dim(&format!("sandbox: scenario {}", p.display())));
        }
    }
    let wired = wiring::services(settings, args.sandbox, &scenario)?;
    let params = params::resolve(runbook.plan(), &pairs, &|name| wired.lookup(name))?;
    let modes = Modes {
        target: wired.target(&runbook, &params),
        effect: Effect::Apply,
        entry: Entry::Repl,
    };
    let session = Session::start(
        runbook,
        NewRun {
            wiring: Wiring {
                store: wiring::store(settings)?,
                actor: settings.actor(args.actor.as_deref())?,
                services: wired.services,
                prompter: prompter(args.answers.as_deref(), args.yes)?,
                sink: crate::view::sink(false),
                webhook: settings.audit_webhook(),
                break_lock: Default::default(),
            },
            modes,
            params,
        },
    )?;
    let mut repl = Repl {
        settings,
        fns: session.runbook().callable().clone_functions_only(),
        session,
        scope: Scope::new(),
        marks: BTreeMap::new(),
        sandbox: wired.sandbox,
        path,
        pairs,
        env: wired.env,
        answers: args.answers.clone(),
        yes: args.yes,
        failures: 0,
        confirm_always: false,
        attached: None,
        interrupted: false,
        piped: false,
        failures_before_run: 0,
        writes_at_input: 0,
    };
    repl.ready();
    repl.loaded_note();
    Ok(repl)
}

/// `--attach RUN_ID`: the stopped run's runbook, ctx and completed steps, journalled into
/// that run so `runbook resume` continues from what happens here.
fn attach<'a>(args: &ReplArgs, run_id: &str, settings: &'a Settings) -> Result<Repl<'a>> {
    let r = crate::commands::runs::reopen(
        crate::commands::runs::ReopenAs {
            run_id,
            entry: Entry::Repl,
            actor: args.actor.as_deref(),
            answers: args.answers.as_deref(),
            yes: args.yes,
            force: args.force,
            break_lock: Default::default(),
            json: false,
        },
        settings,
    )?;
    let mut marks = BTreeMap::new();
    for &i in &r.completed {
        marks.insert(r.session.runbook().plan().steps[i].id.clone(), "done");
    }
    let path = Some(r.session.runbook().file().path.clone());
    let mut repl = Repl {
        settings,
        fns: r.session.runbook().callable().clone_functions_only(),
        session: r.session,
        scope: Scope::new(),
        marks,
        sandbox: None,
        path,
        pairs: Vec::new(),
        env: None,
        answers: args.answers.clone(),
        yes: args.yes,
        failures: 0,
        confirm_always: false,
        attached: Some(run_id.to_string()),
        interrupted: false,
        piped: false,
        failures_before_run: 0,
        writes_at_input: 0,
    };
    repl.ready();
    ui::err(&format!("attached to run {run_id}: completed steps are marked; `runbook resume {run_id}` continues after you leave"));
    Ok(repl)
}

/// A runbook, or none (an engine with every host module).
fn open_runbook(path: Option<&Path>) -> Result<Runbook> {
    Ok(match path {
        Some(p) => crate::commands::exec::load_runbook(p)?,
        None => Runbook::bare(Path::new(".")),
    })
}

impl Repl<'_> {
    /// Puts `ctx` in scope and the script at the prompt.
    fn ready(&mut self) {
        self.scope = Scope::new();
        self.scope.push("ctx", self.session.ctx().clone());
        self.session.run().set_phase(Phase::Repl);
        // Where the writes typed here go, said as `exec` says it; in production each one is
        // confirmed first.
        crate::commands::exec::banner(&self.session, &[]);
        self.session
            .run()
            .scope()
            .set_confirm_repl_writes(self.production() && !self.confirm_always);
        // A run started while `:confirm always` holds records it too: its journal would
        // otherwise show production writes nobody confirmed, and no reason why.
        if self.confirm_always {
            self.record_confirm();
        }
    }

    /// Records whether production writes typed here are confirmed one by one (`:confirm`),
    /// in the run's journal (who decided it) and audit log.
    fn record_confirm(&self) {
        let run = self.session.run();
        let (answer, question) = if self.confirm_always {
            (
                "always",
                "Confirm each production write typed here? (:confirm always: no)",
            )
        } else {
            (
                "each",
                "Confirm each production write typed here? (:confirm each: yes)",
            )
        };
        run.operator().typed("repl.confirm", question, answer);
        if !run.dry_run() {
            run.auditor().note(
                "",
                runbook_core::audit::AuditEvent::ReplConfirm {
                    always: self.confirm_always,
                    production: self.production(),
                },
            );
        }
    }

    /// Where a run of `runbook` with `params` goes, as `start` finds it (`Wired::target`).
    fn target_of(&self, runbook: &Runbook, params: &rhai::Map) -> runbook_core::run::Target {
        let services = self.session.run().services();
        wiring::target(services, self.sandbox.is_some(), runbook, params)
    }

    /// Ends this session's current run, as `:quit` does.
    fn end_run(&self) {
        let run = self.session.run();
        run.ledger().record(Event::ReplEnded {
            failed_inputs: self.failures - self.failures_before_run,
        });
        run.ledger().settle();
        run.auditor().settle(run.parts().store.wait());
    }

    fn production(&self) -> bool {
        self.session.run().info().modes.target == runbook_core::run::Target::Production
    }

    fn loaded_note(&self) {
        if let Some(p) = &self.path {
            let rb = self.session.runbook();
            let m = rb.plan().meta();
            ui::err(&format!(
                "loaded {} ({}) from {}: {} steps; :steps lists them",
                m.title,
                m.id,
                p.display(),
                rb.plan().steps.len()
            ));
        }
    }

    /// Loads a runbook (or none) as a new run of this session, with fresh ctx, functions and
    /// marks: the run so far ends as at `:quit`. One run, one runbook: its journal records
    /// the runbook it runs, its params and where it goes (a rollback reads its steps against
    /// that runbook), and the rotation it may touch, which a write here names when a run
    /// holds it.
    fn open(&mut self, path: Option<PathBuf>) -> Result<()> {
        let runbook = open_runbook(path.as_deref())?;
        let env = self.env.clone();
        let settings = self.settings;
        let params = params::resolve(runbook.plan(), &self.pairs, &|name| {
            wiring::lookup(settings, env.as_ref(), name)
        })?;
        let old = self.session.run().parts().clone();
        let modes = Modes {
            target: self.target_of(&runbook, &params),
            effect: Effect::Apply,
            entry: Entry::Repl,
        };
        let next = Session::start(
            runbook,
            NewRun {
                wiring: Wiring {
                    store: old.store.clone(),
                    actor: old.info.actor.clone(),
                    services: old.services.clone(),
                    prompter: prompter(self.answers.as_deref(), self.yes)?,
                    sink: crate::view::sink(false),
                    webhook: self.settings.audit_webhook(),
                    break_lock: Default::default(),
                },
                modes,
                params,
            },
        )?;
        self.end_run();
        next.run().note_simulators_seen();
        self.session = next;
        self.failures_before_run = self.failures;
        self.fns = self.session.runbook().callable().clone_functions_only();
        self.marks.clear();
        self.path = path;
        self.ready();
        self.loaded_note();
        Ok(())
    }

    /// Runs one compiled input; the value, or the diagnostic.
    fn eval(&mut self, ast: AST) -> std::result::Result<Dynamic, Box<ScriptError>> {
        if let Err(runbook_core::error::Error::Script(e)) =
            self.session.runbook_mut().import_modules(&ast)
        {
            return Err(e);
        }
        self.fns += ast;
        self.session.run().set_phase(Phase::Repl);
        let result = self
            .session
            .runbook()
            .eval_with_scope(&mut self.scope, &self.fns);
        self.fns.clear_statements();
        result.map_err(|e| Box::new(self.diagnose(&e)))
    }

    /// Errors of REPL input point at `<repl>`, not at the runbook.
    fn diagnose(&self, e: &EvalAltResult) -> ScriptError {
        ScriptError::from_eval_in(e, self.session.runbook().sources(), "<repl>")
    }

    /// After an interrupted input: each write it sent whose answer never came, which may
    /// have applied (before, only "interrupted": a half-made change went unsaid).
    fn say_writes_in_doubt(&self) {
        let run = self.session.run();
        // Settled as unknown (the wait was stopped), or not settled at all (the call was
        // abandoned while out).
        // Read back from the store (a fan-out's lines are stored ahead of the fold), or the
        // fold when the store cannot be read; an undo's writes too.
        let in_doubt = |l: &runbook_core::ledger::Ledger| -> Vec<String> {
            let mut all: Vec<String> = l
                .writes
                .iter()
                .skip(self.writes_at_input)
                .chain(&l.undo_writes)
                .filter(|w| {
                    matches!(
                        w.outcome,
                        runbook_core::events::WriteOutcome::Unknown
                            | runbook_core::events::WriteOutcome::Pending
                    )
                })
                .map(|w| format!("{} on {}", w.function, w.target))
                .chain(l.sent_unsettled())
                .collect();
            // A write both settled as unknown and still out is said once.
            let mut seen = std::collections::HashSet::new();
            all.retain(|w| seen.insert(w.clone()));
            all
        };
        let doubtful = match runbook_core::ledger::open(&run.parts().store, &run.info().run_id) {
            Ok((_, l)) => in_doubt(&l),
            Err(_) => run.ledger().read(Vec::new(), in_doubt),
        };
        for w in &doubtful {
            ui::err(&format!(
                "  {w}: sent, and its answer never came: it may have applied; check the vendor (`runbook runs {}` lists it)",
                run.info().run_id
            ));
        }
    }

    fn report_error(&mut self, mut d: Box<ScriptError>) {
        self.failures += 1;
        if runbook_core::interrupt::is_set() {
            runbook_core::interrupt::reset();
            self.interrupted = true;
            ui::err("interrupted");
            self.say_writes_in_doubt();
            return;
        }
        if d.code == "runbook::script::unknown_function" {
            if let Some(near) = self.nearest_function(&d.message) {
                let (module, _) = near.split_once("::").unwrap_or(("", ""));
                let list = if module.is_empty() {
                    "`:api` lists every host function".to_string()
                } else {
                    format!("`:api {module}` lists its functions")
                };
                d.help = Some(format!("did you mean {near}? {list}"));
            }
        }
        // Here the reference is a command away, not a shell away.
        if let Some(h) = &mut d.help {
            *h = h.replace("`runbook api`", "`:api`");
        }
        ui::err(&ui::render(&*d));
    }

    /// The known function nearest to the one a "no function matches NAME (args)" names:
    /// host functions (qualified) and the functions defined in this session or runbook.
    fn nearest_function(&self, message: &str) -> Option<String> {
        let called = message
            .strip_prefix("no function matches ")?
            .split(" (")
            .next()?
            .trim();
        let host = runbook_core::host::modules();
        let mut names: Vec<String> = host
            .registry()
            .iter()
            .map(|f| {
                if f.module.is_empty() {
                    f.name.clone()
                } else {
                    format!("{}::{}", f.module, f.name)
                }
            })
            .collect();
        names.extend(self.fns.iter_functions().map(|f| f.name.to_string()));
        names.extend(BUILTINS.iter().map(|s| s.to_string()));
        names.sort();
        names.dedup();
        runbook_core::suggest::closest(called, names.iter().map(String::as_str)).map(str::to_string)
    }

    fn print_value(v: &Dynamic) {
        if !v.is_unit() {
            ui::out(&value::pretty(v));
        }
    }

    /// Handles one complete input; `false` ends the session.
    /// An input (with its continuation lines) over [`MAX_INPUT_BYTES`] is dropped with an
    /// error: an unclosed string fed a gigabyte must not be held whole.
    fn too_long(&mut self, input: &mut String) -> bool {
        if input.len() <= MAX_INPUT_BYTES {
            return false;
        }
        ui::err(&format!(
            "runbook::limit::repl_input: an input is at most {MAX_INPUT_BYTES} bytes (this one reached {} with an unfinished block, call or string); it is dropped",
            input.len()
        ));
        input.clear();
        self.failures += 1;
        true
    }

    /// Clears Ctrl-C for the next input, remembering that it came: a piped session stops.
    fn clear_interrupt(&mut self) {
        self.interrupted |= runbook_core::interrupt::is_set();
        runbook_core::interrupt::reset();
    }

    fn handle(&mut self, input: &str) -> Handled {
        // A Ctrl-C during a `:` command (which returns before the reset below) must not
        // interrupt the next input the moment it starts; piped, it ends the session.
        self.clear_interrupt();
        if self.piped && self.interrupted {
            return Handled::Quit;
        }
        self.writes_at_input = self.session.run().ledger().read(0, |l| l.writes.len());
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Handled::Done;
        }
        if trimmed.starts_with(':') {
            return if self.command(trimmed) {
                Handled::Done
            } else {
                Handled::Quit
            };
        }
        let handled = match self.session.runbook().compile_input(&self.scope, input) {
            Ok(ast) => match self.eval(ast) {
                Ok(v) => {
                    Self::print_value(&v);
                    Handled::Done
                }
                Err(d) => {
                    let pasted = text_for_a_secret(&d);
                    self.report_error(d);
                    if pasted {
                        Handled::TextForASecret
                    } else {
                        Handled::Done
                    }
                }
            },
            Err(d) => {
                self.report_error(d);
                Handled::NotCompiled
            }
        };
        self.clear_interrupt();
        handled
    }

    fn command(&mut self, line: &str) -> bool {
        let (cmd, arg) = line
            .split_once(' ')
            .map(|(c, a)| (c, a.trim()))
            .unwrap_or((line, ""));
        match cmd {
            ":quit" | ":q" | ":exit" => return false,
            ":help" => {
                for (c, h) in COMMANDS {
                    ui::out(&format!("  {c:<9} {h}"));
                }
                ui::out("  Anything else is rhai: `postmark::server(ctx.old_token)`, `let x = 1`, `fn f() {...}`.");
                ui::out("  Tab lists completions; an unfinished input continues at the `...>` prompt (Ctrl-C drops it).");
            }
            ":steps" => {
                let plan = self.session.runbook().plan();
                for (i, s) in plan.steps.iter().enumerate() {
                    let mark = self.marks.get(&s.id).copied().unwrap_or("");
                    ui::out(&format!(
                        "  {}. {:<12} {:<8} {}",
                        i + 1,
                        s.id,
                        mark,
                        s.title
                    ));
                }
                if plan.steps.is_empty() {
                    ui::err("no runbook loaded: :load RUNBOOK");
                }
            }
            ":ctx" => ui::out(&self.session.ctx().render()),
            ":env" => crate::commands::exec::banner(&self.session, &[]),
            ":confirm" => match arg {
                "always" => {
                    self.confirm_always = true;
                    self.session.run().scope().set_confirm_repl_writes(false);
                    self.record_confirm();
                    ui::err(if self.production() {
                        "production writes typed here are no longer confirmed one by one, for the rest of this session"
                    } else {
                        "this session does not write to production; nothing to confirm"
                    });
                }
                "each" => {
                    self.confirm_always = false;
                    self.session
                        .run()
                        .scope()
                        .set_confirm_repl_writes(self.production());
                    self.record_confirm();
                    ui::err("each production write typed here is confirmed first");
                }
                _ => ui::err(":confirm always | :confirm each"),
            },
            ":params" => {
                for p in &self.session.runbook().plan().params {
                    let v = self.session.ctx().get("params").and_then(|ps| {
                        ps.read_lock::<rhai::Map>()
                            .and_then(|m| m.get(p.name.as_str()).cloned())
                    });
                    ui::out(&format!(
                        "  {} = {}",
                        p.name,
                        v.map(|v| value::pretty(&v)).unwrap_or_else(|| "()".into())
                    ));
                }
            }
            ":api" => Self::api(arg),
            ":sandbox" => match &self.sandbox {
                Some(s) => {
                    let urls: Vec<String> = s
                        .urls()
                        .built_in()
                        .map(|(name, url)| format!("  {name} {url}"))
                        .collect();
                    ui::out(&urls.join("\n"));
                    let state = s.state();
                    let tokens = state["postmark"]["servers"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .map(|x| x["ApiTokens"].as_array().map(|a| a.len()).unwrap_or(0))
                                .sum::<usize>()
                        })
                        .unwrap_or(0);
                    ui::out(&format!(
                        "  postmark tokens: {tokens}; emails sent: {}; downstream 401s: {}",
                        state["postmark"]["emails"]["count"], state["downstream_401s"]
                    ));
                }
                None => ui::err("not a sandbox session (start with `runbook repl --sandbox`)"),
            },
            ":load" | ":reload" if self.attached.is_some() => {
                // Opening a runbook starts over from its defaults: inside the attached run
                // that would journal steps on other params and a ctx without the run's
                // values, which resume and rollback then restore from.
                self.failures += 1;
                let run_id = self.attached.as_deref().unwrap_or_default();
                ui::err(&format!(
                    "{cmd} is not available in a session attached to run {run_id}: the run goes on with the runbook, params and ctx it recorded. Leave (:quit), then `runbook repl --attach {run_id}` again (a runbook changed since is checked there), or `runbook resume {run_id}`"
                ));
            }
            ":load" => {
                if arg.is_empty() {
                    ui::err("usage: :load RUNBOOK");
                } else {
                    let opened = self
                        .settings
                        .library
                        .find(arg)
                        .map_err(crate::error::Error::from)
                        .and_then(|p| self.open(Some(p)));
                    if let Err(e) = opened {
                        self.failures += 1;
                        ui::err(&ui::render(&e));
                    }
                }
            }
            ":reload" => match self.path.clone() {
                Some(p) => {
                    if let Err(e) = self.open(Some(p)) {
                        self.failures += 1;
                        ui::err(&ui::render(&e));
                    }
                }
                None => ui::err("no runbook loaded"),
            },
            ":run" | ":undo" => self.step(arg, cmd == ":undo"),
            _ => {
                self.failures += 1;
                let known = COMMANDS.iter().map(|(c, _)| *c).chain([":q", ":exit"]);
                match runbook_core::suggest::closest(cmd, known) {
                    Some(near) => ui::err(&format!(
                        "unknown command {cmd}; did you mean {near}? :help lists them"
                    )),
                    None => ui::err(&format!("unknown command {cmd}; :help lists them")),
                }
            }
        }
        true
    }

    fn api(module: &str) {
        let modules = runbook_core::host::modules();
        for f in modules
            .registry()
            .iter()
            .filter(|f| module.is_empty() || f.module == module)
        {
            ui::out(&format!("  {}  [{}]", f.signature(), f.effect.as_str()));
            if let Some(first) = f.doc.lines().next() {
                ui::out(&format!("      {first}"));
            }
        }
    }

    /// Runs one step (or its undo) exactly as exec would: confirmation, journal, audit. A
    /// step runs only after the steps before it (in this session or the attached run), unless
    /// `--force`; an irreversible one needs its id typed.
    fn step(&mut self, arg: &str, undo: bool) {
        let (id, force) = match arg.split_whitespace().collect::<Vec<_>>().as_slice() {
            [id] => (id.to_string(), false),
            [id, "--force"] => (id.to_string(), true),
            _ => {
                self.failures += 1;
                ui::err(if undo {
                    "usage: :undo STEP [--force]"
                } else {
                    "usage: :run STEP [--force]"
                });
                return;
            }
        };
        let id = id.as_str();
        let Some(step) = self.session.runbook().plan().step(id).cloned() else {
            self.failures += 1;
            let ids: Vec<&str> = self
                .session
                .runbook()
                .plan()
                .steps
                .iter()
                .map(|s| s.id.as_str())
                .collect();
            ui::err(&format!("no step '{id}'; steps: {}", ids.join(", ")));
            return;
        };
        // Four eyes cannot be skipped by running the step by hand: it runs in exec or
        // resume, where the approval is asked for.
        // runbook.toml changed into one that cannot be read since the start: still a policy.
        let policy = !matches!(self.settings.approval_policy(), Ok(None));
        if !undo && (step.approval.is_some() || (step.irreversible.is_some() && policy)) {
            self.failures += 1;
            ui::err(&format!(
                "step '{id}' needs another actor's approval, which the REPL does not ask for: run it with `runbook resume` (or exec), where the approval is requested"
            ));
            return;
        }
        if undo && step.undo.is_none() {
            self.failures += 1;
            ui::err(&format!("step '{id}' has no undo"));
            return;
        }
        // An undo puts back what its step changed: one that did not run here changed
        // nothing, and its undo would overwrite what is there now.
        if undo && self.marks.get(id) != Some(&"done") && !force {
            self.failures += 1;
            let here = if self.attached.is_some() {
                "in this session or the attached run"
            } else {
                "in this session"
            };
            ui::err(&format!(
                "step '{id}' has not completed {here}: its undo would put back what it never changed. `:undo {id} --force` runs it anyway"
            ));
            return;
        }
        // As rollback asks before it undoes anything: an undo writes to production too
        // (`:confirm always` is for writes typed here, not for going back).
        if undo && !self.asked_in_production(id, "undo", "Undo", "not undone", true) {
            return;
        }
        // As a rollback does before it writes: a value deleted since is never put back, and
        // a target changed since is left alone (before, `:undo` wrote the journal's values
        // over whatever the vendors held).
        let index = self
            .session
            .runbook()
            .plan()
            .steps
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_default();
        if undo
            && !self.session.run().dry_run()
            && !runbook_core::exec::checked_before_undo(&self.session, index)
        {
            self.failures += 1;
            ui::err(&format!("step '{id}' not undone"));
            return;
        }
        let plan = self.session.runbook().plan();
        let missing: Vec<String> = plan
            .steps
            .iter()
            .take_while(|s| s.id != id)
            .filter(|s| self.marks.get(&s.id) != Some(&"done"))
            .map(|s| s.id.clone())
            .collect();
        let out_of_order = !undo && !missing.is_empty();
        if out_of_order && !force {
            self.failures += 1;
            ui::err(&format!(
                "step '{id}' runs after {}, which have not completed in this session; run them first, or `:run {id} --force` to run it anyway (journalled as out of order)",
                missing.join(", ")
            ));
            return;
        }
        if !undo {
            if let Some(why) = &step.irreversible {
                ui::err(&format!("  ! This step cannot be undone: {why}"));
            }
            if out_of_order {
                ui::err(&format!(
                    "  ! Earlier steps have not run in this session: {}. Nothing they check has been checked.",
                    missing.join(", ")
                ));
            }
            if step.irreversible.is_some() || out_of_order {
                let question = if out_of_order {
                    format!("Type the step id ({id}) to run it anyway, out of order")
                } else {
                    format!("Type the step id ({id}) to run it")
                };
                let typed =
                    self.session
                        .run()
                        .operator()
                        .ask(&format!("{id}.type-id"), &question, None);
                match typed {
                    Ok(t) if t.trim() == id => {}
                    Ok(_) => {
                        self.failures += 1;
                        ui::err(&format!("step '{id}' not run: its id was not typed"));
                        return;
                    }
                    Err(e) => {
                        self.failures += 1;
                        ui::err(&format!("step '{id}' not run: {e}"));
                        return;
                    }
                }
            }
            // A step's confirmation speaks of the steps before it ("every consumer has been
            // verified"): out of order that would be false, and the typed id stands for it.
            // A step typed at the prompt in production is asked for once, as each typed
            // write is, unless a question above already stood for it.
            let asked = step.irreversible.is_some() || out_of_order || step.confirm.is_some();
            if !asked && !self.asked_in_production(id, "run", "Run", "not run", false) {
                return;
            }
            if let Some(q) = step.confirm.as_ref().filter(|_| !out_of_order) {
                // Anything but yes is an input that did not do what it asked: a piped
                // session then exits 1, and an unanswerable question says how to answer.
                match step::confirm(&self.session, &step, q) {
                    Confirmation::Yes => {}
                    Confirmation::No => {
                        self.failures += 1;
                        ui::err(&format!("step '{id}' not run: the operator said no"));
                        return;
                    }
                    Confirmation::Interrupted => {
                        self.failures += 1;
                        self.interrupted = true;
                        ui::err(&format!("step '{id}' not run: interrupted"));
                        return;
                    }
                    Confirmation::NoAnswer(d) => {
                        self.failures += 1;
                        ui::err(&format!("step '{id}' not run"));
                        ui::err(&ui::render(&*d));
                        return;
                    }
                }
            }
        }
        let (kind, direction) = if undo {
            ("undo", Direction::Undo)
        } else {
            ("step", Direction::Forward)
        };
        let attempt = step::execute_marked(&self.session, &step, direction, 1, out_of_order);
        self.session.run().set_phase(Phase::Repl);
        match attempt.outcome {
            Outcome::Done => {
                self.marks
                    .insert(id.to_string(), if undo { "undone" } else { "done" });
                ui::err(&format!("  ✓ {kind} {id} ({} ms)", attempt.duration_ms));
            }
            Outcome::Failed(d) => self.report_error(d),
            Outcome::Aborted => {
                self.failures += 1;
                ui::err(&format!("{kind} {id} aborted by the operator"));
            }
            Outcome::Interrupted => {
                self.failures += 1;
                self.interrupted = true;
                ui::err("interrupted");
                self.say_writes_in_doubt();
            }
            Outcome::Fenced(why) => {
                self.failures += 1;
                ui::err(&format!("{kind} {id} stopped: {why}"));
            }
        }
        self.clear_interrupt();
    }

    /// In production (until `:confirm always`, unless `always`), asks before `:run` or
    /// `:undo` of a step:
    /// `false` when the step is not to run, which is said.
    fn asked_in_production(
        &mut self,
        id: &str,
        key: &str,
        verb: &str,
        not_done: &str,
        always: bool,
    ) -> bool {
        if !self.production() || (self.confirm_always && !always) {
            return true;
        }
        let said = self.session.run().operator().confirm(
            &format!("{id}.{key}"),
            &format!("{verb} step '{id}' in PRODUCTION now?"),
        );
        match said {
            Ok(true) => true,
            Ok(false) => {
                self.failures += 1;
                ui::err(&format!("step '{id}' {not_done}: the operator said no"));
                false
            }
            Err(e) => {
                self.failures += 1;
                if matches!(e, runbook_core::prompt::PromptError::Interrupted) {
                    self.interrupted = true;
                }
                ui::err(&format!("step '{id}' {not_done}: {e}"));
                false
            }
        }
    }

    fn refresh(&self, helper: &mut ReplHelper) {
        let mut modules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let host = runbook_core::host::modules();
        for f in host.registry().iter().filter(|f| !f.module.is_empty()) {
            modules
                .entry(f.module.to_string())
                .or_default()
                .push(f.name.clone());
        }
        helper.modules = modules.into_iter().collect();
        helper.steps = self
            .session
            .runbook()
            .plan()
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect();
        helper.variables = self.scope.iter().map(|(n, _, _)| n.to_string()).collect();
    }

    fn interactive(&mut self, state_dir: &Path) -> u8 {
        // Tab lists the candidates (as a shell does) rather than cycling them in place.
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .completion_type(rustyline::CompletionType::List)
            .build();
        let Ok(mut editor) = Editor::<ReplHelper, DefaultHistory>::with_config(config) else {
            ui::err("cannot open the terminal for the REPL");
            return exit::USAGE;
        };
        editor.set_helper(Some(ReplHelper::new()));
        let history = state_dir.join("repl_history");
        // Never read or written through a link, nor in a folder of another user.
        let keep_history = match runbook_core::state::check_within(state_dir, &history) {
            Ok(()) => true,
            Err(e) => {
                ui::err(&format!(
                    "warning: the REPL keeps no history this time: {e}"
                ));
                false
            }
        };
        if keep_history {
            let _ = editor.load_history(&history);
        }
        ui::err("runbook repl — :help for commands, Ctrl-D to leave");
        // An unfinished input (an open block, call or string) collects lines here, each
        // read at a continuation prompt, until it parses.
        let mut pending = String::new();
        // Lines that were not text, one after another: a stream that yields nothing else
        // ends the session rather than saying so for ever.
        let mut not_text = 0;
        loop {
            if let Some(h) = editor.helper_mut() {
                self.refresh(h);
            }
            let plan = self.session.runbook().plan();
            // The target is in the prompt: a line typed here in production writes there.
            let main = match (plan.steps.is_empty(), self.production()) {
                (true, false) => "runbook> ".to_string(),
                (false, false) => format!("{}> ", plan.meta().id),
                (true, true) => "runbook[PRODUCTION]> ".to_string(),
                (false, true) => format!("runbook[PRODUCTION {}]> ", plan.meta().id),
            };
            let prompt = if pending.is_empty() {
                main
            } else {
                format!("{:>width$}", "...> ", width = main.chars().count())
            };
            match editor.readline(&prompt) {
                Ok(line) => {
                    not_text = 0;
                    if !pending.is_empty() {
                        pending.push('\n');
                    }
                    pending.push_str(&line);
                    if self.too_long(&mut pending) {
                        continue;
                    }
                    let unfinished = editor
                        .helper()
                        .is_some_and(|h| is_incomplete(h.syntax(), &pending));
                    if unfinished {
                        continue;
                    }
                    let input = std::mem::take(&mut pending);
                    let handled = self.handle(&input);
                    // Asked after it ran, since running it may have made its value secret. A
                    // line that did not compile is retyped, not recalled: it is often a
                    // pasted value in the wrong place.
                    let retyped = matches!(handled, Handled::NotCompiled | Handled::TextForASecret);
                    if !retyped && history::may_keep(&input) {
                        let _ = editor.add_history_entry(input.as_str());
                    }
                    if handled == Handled::Quit {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    if !pending.is_empty() {
                        pending.clear();
                        ui::err("(unfinished input dropped)");
                    }
                    continue;
                }
                // A line that is not text is dropped; the session (and what it holds) goes on.
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.failures += 1;
                    pending.clear();
                    not_text += 1;
                    if not_text >= 3 {
                        ui::err(&format!(
                            "{}, three times over; the session ends",
                            unreadable(&e)
                        ));
                        break;
                    }
                    ui::err(&format!("{}; it is dropped", unreadable(&e)));
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    ui::err(&format!(
                        "the terminal could not be read ({e}); the session ends"
                    ));
                    break;
                }
            }
        }
        if keep_history {
            save_history(&mut editor, state_dir, &history);
        }
        exit::OK
    }

    /// Statements from a pipe, one complete input at a time; exit 1 if any failed.
    fn piped(&mut self) -> u8 {
        self.piped = true;
        let syntax = ReplHelper::new();
        let mut buffer = String::new();
        for line in std::io::stdin().lock().lines() {
            let line = match line {
                Ok(line) => line,
                // Not the end of the input: the rest is not run, and the exit says so.
                Err(e) => {
                    self.failures += 1;
                    ui::err(&format!(
                        "{}; it and the rest of the input are not run",
                        unreadable(&e)
                    ));
                    buffer.clear();
                    break;
                }
            };
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if self.too_long(&mut buffer) {
                continue;
            }
            if is_incomplete(syntax.syntax(), &buffer) {
                continue;
            }
            // A signal while the line was read, or one the last input ended on: the lines
            // after it are not what the operator wants run now.
            self.interrupted |= runbook_core::interrupt::is_set();
            if self.interrupted {
                break;
            }
            let input = std::mem::take(&mut buffer);
            if self.handle(&input) == Handled::Quit {
                break;
            }
            self.interrupted |= runbook_core::interrupt::is_set();
        }
        if self.interrupted {
            ui::err("interrupted: the rest of the input was not run");
            return exit::INTERRUPTED;
        }
        if !buffer.trim().is_empty() {
            self.handle(&buffer);
        }
        if self.failures > 0 {
            exit::STEP_FAILED
        } else {
            exit::OK
        }
    }
}

/// What a line that could not be read is, for the operator.
fn unreadable(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        "runbook::repl::input: a line of the input is not UTF-8 text".to_string()
    } else {
        format!("runbook::repl::input: the input could not be read ({e})")
    }
}

/// Whether an input failed because text was given where a Secret belongs: a host call that
/// refused it ("is text, not a Secret"), or a module function no signature of which takes
/// a string there ("no function matches postmark::server (&str)"). The text is then most
/// likely a credential pasted in the wrong place: the line is not kept in the history.
fn text_for_a_secret(d: &ScriptError) -> bool {
    // The host's refusals of text where a credential belongs (set_secret, bearer, aws
    // keys, a header or query parameter named as a credential).
    let refused = [
        "is text, not a Secret",
        "must be a Secret",
        "carries a credential, and its value is text",
        "a credential, as text",
    ];
    if refused.iter().any(|r| d.message.contains(r)) {
        return true;
    }
    let Some(rest) = d.message.strip_prefix("no function matches ") else {
        return false;
    };
    let (name, args) = rest.split_once(" (").unwrap_or((rest, ""));
    name.contains("::") && (args.contains("&str") || args.contains("string"))
}

/// Writes the history to a fresh private file beside it, then moves it into place: a link
/// planted where the history was is replaced, never written through.
fn save_history(editor: &mut Editor<ReplHelper, DefaultHistory>, state_dir: &Path, history: &Path) {
    use rustyline::history::History;
    use std::os::unix::fs::PermissionsExt;
    // A line whose value a later line made secret is dropped too.
    let kept: Vec<String> = editor
        .history()
        .iter()
        .filter(|line| history::may_keep(line))
        .cloned()
        .collect();
    if kept.len() != editor.history().len() {
        let _ = editor.clear_history();
        for line in &kept {
            let _ = editor.add_history_entry(line.as_str());
        }
    }
    if runbook_core::state::ensure_dir(state_dir, &|w| ui::err(&w)).is_err()
        || runbook_core::state::check_within(state_dir, history).is_err()
    {
        return;
    }
    let fresh = history.with_extension("new");
    let _ = std::fs::remove_file(&fresh);
    if editor.save_history(&fresh).is_ok() {
        let _ = std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600));
        let _ = std::fs::rename(&fresh, history);
    }
}
