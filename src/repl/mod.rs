//! `runbook repl`: any expression with every host module, one step of a runbook at a time,
//! with the same redaction, confirmations, journal and audit as `exec`.

mod helper;

pub use helper::is_incomplete;

use crate::cli::ReplArgs;
use crate::commands::exec::EnvVars;
use helper::{ReplHelper, COMMANDS};
use rhai::{Dynamic, EvalAltResult, Scope, AST};
use runbook_core::engine::ScriptError;
use runbook_core::error::{exit, Error, Result};
use runbook_core::exec::{self, params, resume, Journal};
use runbook_core::host::services::Services;
use runbook_core::host::{value, Phase, RunInfo};
use runbook_core::plan::{self, Ctx, Loaded};
use runbook_core::prompt::{Answers, Prompter};
use runbook_core::ui;
use runbook_sandbox::Sandbox;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;

struct Session {
    loaded: Loaded,
    scope: Scope<'static>,
    /// Functions defined so far: the runbook's and the session's.
    fns: AST,
    ctx: Ctx,
    /// Step id → "done" / "undone" (this session, or the attached run's journal).
    marks: BTreeMap<String, &'static str>,
    services: Rc<Services>,
    /// The simulators of a `--sandbox` session.
    sandbox: Option<Sandbox>,
    journal: Rc<Journal>,
    run: RunInfo,
    path: Option<PathBuf>,
    pairs: Vec<(String, String)>,
    env: Option<EnvVars>,
    answers: Option<PathBuf>,
    yes: bool,
    failures: usize,
    _lock: Option<runbook_core::exec::lock::Lock>,
}

pub fn run(args: ReplArgs) -> Result<u8> {
    let state_dir = runbook_core::state::dir();
    let mut session = match &args.attach {
        Some(run_id) => attach(&args, run_id)?,
        None => start(&args, &state_dir)?,
    };
    let code = if std::io::stdin().is_terminal() {
        session.interactive(&state_dir)
    } else {
        session.piped()
    };
    session
        .journal
        .record("repl.end", json!({ "failed_inputs": session.failures }));
    Ok(code)
}

fn prompter(answers: Option<&Path>, yes: bool) -> Result<Prompter> {
    let answers = match answers {
        Some(p) => Answers::load(p)?,
        None => Answers::default(),
    };
    Ok(Prompter::new(answers, yes))
}

fn start(args: &ReplArgs, state_dir: &Path) -> Result<Session> {
    let pairs = params::parse_pairs(&args.params)?;
    let (services, sandbox, env) = crate::commands::exec::services(args.sandbox, &args.scenario)?;
    let run = RunInfo {
        run_id: exec::new_run_id(),
        actor: exec::actor(args.actor.as_deref()),
        runbook_id: String::new(),
        mode: "repl".into(),
    };
    let journal = Rc::new(Journal::open(state_dir, &run.run_id)?);
    let mut session = Session {
        loaded: plan::bare(Path::new("."), Prompter::silent()),
        scope: Scope::new(),
        fns: AST::empty(),
        ctx: Ctx::default(),
        marks: BTreeMap::new(),
        services: Rc::new(services),
        sandbox,
        journal,
        run,
        path: None,
        pairs,
        env,
        answers: args.answers.clone(),
        yes: args.yes,
        failures: 0,
        _lock: None,
    };
    let path = match &args.runbook {
        Some(name) => Some(plan::find(name)?),
        None => None,
    };
    session.open(path)?;
    session.journal.record(
        "run.start",
        json!({
            "run_id": session.run.run_id,
            "runbook": session.run.runbook_id,
            "source": resume::fingerprints(&session.loaded),
            "params": session.ctx.snapshot()["params"],
            "actor": session.run.actor,
            "host": exec::hostname(),
            "pid": std::process::id(),
            "mode": "repl",
            "sandbox": args.sandbox,
        }),
    );
    Ok(session)
}

/// `--attach RUN_ID`: the stopped run's runbook, ctx and completed steps, journalled into
/// that run so `runbook resume` continues from what happens here.
fn attach(args: &ReplArgs, run_id: &str) -> Result<Session> {
    let resume_args = crate::cli::ResumeArgs {
        run_id: run_id.to_string(),
        force: args.force,
        yes: args.yes,
        no_rollback: true,
        answers: args.answers.clone(),
        actor: args.actor.clone(),
        json: false,
        break_lock: false,
    };
    let r = crate::commands::runs::reopen(&resume_args, "repl")?;
    let services = r
        .loaded
        .host
        .services
        .borrow()
        .clone()
        .ok_or_else(|| Error::usage("the run has no services", "this is a bug"))?;
    let journal = r
        .loaded
        .host
        .journal
        .borrow()
        .clone()
        .ok_or_else(|| Error::usage("the run has no journal", "this is a bug"))?;
    let mut marks = BTreeMap::new();
    for &i in &r.completed {
        marks.insert(r.loaded.plan.steps[i].id.clone(), "done");
    }
    let path = Some(r.loaded.file.path.clone());
    let mut run = r.loaded.host.run.borrow().clone();
    run.mode = "repl".into();
    let mut session = Session {
        fns: r.loaded.ast.clone_functions_only(),
        loaded: r.loaded,
        scope: Scope::new(),
        ctx: r.ctx,
        marks,
        services,
        sandbox: None,
        journal,
        run,
        path,
        pairs: Vec::new(),
        env: None,
        answers: args.answers.clone(),
        yes: args.yes,
        failures: 0,
        _lock: Some(r.lock),
    };
    session.wire();
    session.scope.push("ctx", session.ctx.clone());
    ui::err(&format!("attached to run {run_id}: completed steps are marked; `runbook resume {run_id}` continues after you leave"));
    Ok(session)
}

impl Session {
    /// Points the loaded runbook's host at this session's run.
    fn wire(&self) {
        let host = &self.loaded.host;
        *host.run.borrow_mut() = RunInfo {
            runbook_id: self.loaded.plan.meta().id.clone(),
            ..self.run.clone()
        };
        *host.services.borrow_mut() = Some(self.services.clone());
        *host.journal.borrow_mut() = Some(self.journal.clone());
        *host.audit.borrow_mut() = Some(runbook_core::audit::AuditLog::new(
            &runbook_core::state::dir(),
        ));
        host.set_phase(Phase::Repl);
    }

    /// Loads a runbook (or none) and resets ctx, functions and marks.
    fn open(&mut self, path: Option<PathBuf>) -> Result<()> {
        let prompter = prompter(self.answers.as_deref(), self.yes)?;
        let loaded = match &path {
            Some(p) => plan::load(plan::SourceFile::read(p)?, prompter)?,
            None => plan::bare(Path::new("."), prompter),
        };
        let env = self.env.clone();
        let lookup = |name: &str| -> Option<String> {
            match &env {
                Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                None => std::env::var(name).ok(),
            }
        };
        let params = params::resolve(&loaded.plan, &self.pairs, &lookup)?;
        self.run.runbook_id = loaded.plan.meta().id.clone();
        self.fns = loaded.ast.clone_functions_only();
        self.loaded = loaded;
        self.ctx = Ctx::new(params);
        self.marks.clear();
        self.scope = Scope::new();
        self.scope.push("ctx", self.ctx.clone());
        self.path = path;
        self.wire();
        if let Some(p) = &self.path {
            let m = self.loaded.plan.meta();
            ui::err(&format!(
                "loaded {} ({}) from {}: {} steps; :steps lists them",
                m.title,
                m.id,
                p.display(),
                self.loaded.plan.steps.len()
            ));
        }
        Ok(())
    }

    /// Compiles and runs one input; the value, or the diagnostic.
    fn eval(&mut self, input: &str) -> std::result::Result<Dynamic, Box<ScriptError>> {
        let sources = self.loaded.host.sources.clone();
        sources.add("<repl>", input);
        let mut ast = self
            .loaded
            .engine
            .compile_with_scope(&self.scope, input)
            .map_err(|e| Box::new(ScriptError::from_parse(&e, &sources, "<repl>")))?;
        ast.set_source("<repl>");
        if let Err(Error::Script(e)) = plan::load::import_modules(&mut self.loaded, &ast) {
            return Err(e);
        }
        self.fns += ast;
        self.loaded.host.set_phase(Phase::Repl);
        let result = self
            .loaded
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.fns);
        self.fns.clear_statements();
        result.map_err(|e| Box::new(self.diagnose(&e)))
    }

    /// Errors of REPL input point at `<repl>`, not at the runbook.
    fn diagnose(&self, e: &EvalAltResult) -> ScriptError {
        ScriptError::from_eval_in(e, &self.loaded.host.sources, "<repl>")
    }

    fn report_error(&mut self, d: &ScriptError) {
        self.failures += 1;
        if runbook_core::interrupt::is_set() {
            runbook_core::interrupt::reset();
            ui::err("interrupted");
            return;
        }
        ui::err(&ui::render(d));
    }

    fn print_value(v: &Dynamic) {
        if !v.is_unit() {
            ui::out(&value::pretty(v));
        }
    }

    /// Handles one complete input; `false` ends the session.
    fn handle(&mut self, input: &str) -> bool {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return true;
        }
        if trimmed.starts_with(':') {
            return self.command(trimmed);
        }
        match self.eval(input) {
            Ok(v) => Self::print_value(&v),
            Err(d) => self.report_error(&d),
        }
        runbook_core::interrupt::reset();
        true
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
            }
            ":steps" => {
                for (i, s) in self.loaded.plan.steps.iter().enumerate() {
                    let mark = self.marks.get(&s.id).copied().unwrap_or("");
                    ui::out(&format!(
                        "  {}. {:<12} {:<8} {}",
                        i + 1,
                        s.id,
                        mark,
                        s.title
                    ));
                }
                if self.loaded.plan.steps.is_empty() {
                    ui::err("no runbook loaded: :load RUNBOOK");
                }
            }
            ":ctx" => ui::out(&self.ctx.render()),
            ":params" => {
                for p in &self.loaded.plan.params {
                    let v = self.ctx.get("params").and_then(|ps| {
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
            ":api" => self.api(arg),
            ":sandbox" => match &self.sandbox {
                Some(s) => {
                    let u = s.urls();
                    ui::out(&format!(
                        "  postmark {}\n  infisical {}\n  heroku {}\n  github {}\n  raptor {}",
                        u.postmark, u.infisical, u.heroku, u.github, u.raptor
                    ));
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
            ":load" => {
                if arg.is_empty() {
                    ui::err("usage: :load RUNBOOK");
                } else {
                    match plan::find(arg).and_then(|p| self.open(Some(p))) {
                        Ok(()) => {}
                        Err(e) => {
                            self.failures += 1;
                            ui::err(&ui::render(&e));
                        }
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
                ui::err(&format!("unknown command {cmd}; :help lists them"));
            }
        }
        true
    }

    fn api(&self, module: &str) {
        let registry = self.loaded.host.registry.borrow();
        for f in registry
            .iter()
            .filter(|f| module.is_empty() || f.module == module)
        {
            ui::out(&format!("  {}  [{}]", f.signature(), f.effect.as_str()));
            if let Some(first) = f.doc.lines().next() {
                ui::out(&format!("      {first}"));
            }
        }
    }

    /// Runs one step (or its undo) exactly as exec would: confirmation, journal, audit.
    fn step(&mut self, id: &str, undo: bool) {
        let Some(step) = self.loaded.plan.step(id).cloned() else {
            self.failures += 1;
            let ids: Vec<&str> = self
                .loaded
                .plan
                .steps
                .iter()
                .map(|s| s.id.as_str())
                .collect();
            ui::err(&format!("no step '{id}'; steps: {}", ids.join(", ")));
            return;
        };
        let f = if undo {
            match &step.undo {
                Some(f) => f.clone(),
                None => {
                    self.failures += 1;
                    ui::err(&format!("step '{id}' has no undo"));
                    return;
                }
            }
        } else {
            step.run.clone()
        };
        if !undo {
            if let Some(q) = &step.confirm {
                if let Some(why) = &step.irreversible {
                    ui::err(&format!("  ! This step cannot be undone: {why}"));
                }
                let answer = self
                    .loaded
                    .host
                    .prompter
                    .borrow_mut()
                    .confirm(&format!("{id}.confirm"), q);
                if !matches!(answer, Ok(true)) {
                    ui::err(&format!("step '{id}' not run"));
                    return;
                }
            }
        }
        let (kind, phase) = if undo {
            ("undo", Phase::Undo(id.to_string()))
        } else {
            ("step", Phase::Step(id.to_string()))
        };
        self.journal
            .record(&format!("{kind}.intent"), json!({ "step": id }));
        self.loaded.host.set_phase(phase);
        self.loaded.host.writes_in_step.set(0);
        let started = std::time::Instant::now();
        let result = f.call::<Dynamic>(&self.loaded.engine, &self.loaded.ast, (self.ctx.clone(),));
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(_) => {
                if undo {
                    self.journal.record(
                        "undo.outcome",
                        json!({ "step": id, "ok": true, "ctx": self.ctx.snapshot() }),
                    );
                    self.marks.insert(id.to_string(), "undone");
                } else {
                    self.journal.record("step.outcome", json!({ "step": id, "status": "completed", "duration_ms": ms, "ctx": self.ctx.snapshot() }));
                    self.marks.insert(id.to_string(), "done");
                }
                let _ = self.loaded.host.audit_event(
                    if undo {
                        "step.undone"
                    } else {
                        "step.completed"
                    },
                    json!({ "duration_ms": ms }),
                );
                ui::err(&format!("  ✓ {kind} {id} ({ms} ms)"));
                self.loaded.host.set_phase(Phase::Repl);
            }
            Err(e) => {
                let d = ScriptError::from_eval(&e, self.loaded.sources());
                let outcome = if undo { "undo.outcome" } else { "step.outcome" };
                self.journal.record(
                    outcome,
                    json!({ "step": id, "status": "failed", "ok": false, "error": d.to_string() }),
                );
                let _ = self.loaded.host.audit_event(
                    if undo {
                        "step.undo_failed"
                    } else {
                        "step.failed"
                    },
                    json!({ "error": d.to_string() }),
                );
                self.loaded.host.set_phase(Phase::Repl);
                self.report_error(&d);
            }
        }
        runbook_core::interrupt::reset();
    }

    fn refresh(&self, helper: &mut ReplHelper) {
        let mut modules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in self
            .loaded
            .host
            .registry
            .borrow()
            .iter()
            .filter(|f| !f.module.is_empty())
        {
            modules
                .entry(f.module.to_string())
                .or_default()
                .push(f.name.clone());
        }
        helper.modules = modules.into_iter().collect();
        helper.steps = self
            .loaded
            .plan
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect();
        helper.variables = self.scope.iter().map(|(n, _, _)| n.to_string()).collect();
    }

    fn interactive(&mut self, state_dir: &Path) -> u8 {
        let config = rustyline::Config::builder().auto_add_history(false).build();
        let Ok(mut editor) = Editor::<ReplHelper, DefaultHistory>::with_config(config) else {
            ui::err("cannot open the terminal for the REPL");
            return exit::USAGE;
        };
        editor.set_helper(Some(ReplHelper::new()));
        let history = state_dir.join("repl_history");
        let _ = editor.load_history(&history);
        ui::err("runbook repl — :help for commands, Ctrl-D to leave");
        loop {
            if let Some(h) = editor.helper_mut() {
                self.refresh(h);
            }
            let prompt = if self.loaded.plan.steps.is_empty() {
                "runbook> ".to_string()
            } else {
                format!("{}> ", self.loaded.plan.meta().id)
            };
            match editor.readline(&prompt) {
                Ok(line) => {
                    // A line that held a secret value never reaches the history file.
                    if runbook_secret::redact(&line) == line.as_str() && !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if !self.handle(&line) {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(_) => break,
            }
        }
        let _ = runbook_core::state::ensure_dir(state_dir);
        if editor.save_history(&history).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&history, std::fs::Permissions::from_mode(0o600));
        }
        exit::OK
    }

    /// Statements from a pipe, one complete input at a time; exit 1 if any failed.
    fn piped(&mut self) -> u8 {
        let syntax = ReplHelper::new();
        let mut buffer = String::new();
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if is_incomplete(syntax.syntax(), &buffer) {
                continue;
            }
            let input = std::mem::take(&mut buffer);
            if !self.handle(&input) {
                break;
            }
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
