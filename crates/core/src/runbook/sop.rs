//! A runbook rendered as an SOP page (`runbook doc`): header from the metadata, when to run,
//! params, prerequisites, numbered steps with their checks, undo and the point of no return,
//! rollback, gotchas and references. One document model, two renderings: Markdown (what
//! `docs/runbooks/` holds) and a standalone HTML page.

use super::program::Program;
use super::Runbook;
use crate::plan::Step;
use rhai::{FnPtr, AST};

/// A block of the page.
pub enum Block {
    Title(String),
    Heading(String),
    Subheading(String),
    Para(String),
    Quote(String),
    List(Vec<String>),
    Checklist(Vec<String>),
    /// A header row, then rows.
    Table(Vec<String>, Vec<Vec<String>>),
    Code(String),
    Details(String, Vec<Block>),
}

/// The SOP page of a loaded runbook; `shown_as` is how the page names the runbook in the
/// commands it quotes (`postmark`).
pub fn page(loaded: &Runbook, shown_as: &str, source_label: &str) -> Vec<Block> {
    let plan = loaded.plan();
    let m = plan.meta();
    let mut b = vec![Block::Title(m.title.clone())];
    b.push(Block::Quote(format!(
        "Generated from `{source_label}` by `runbook doc`: edit the runbook, not this page, and regenerate."
    )));
    if let Some(d) = &m.description {
        b.push(Block::Para(d.clone()));
    }
    let mut facts = vec![format!("**Runbook:** `{}`", m.id)];
    let mut fact = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            facts.push(format!("**{k}:** {v}"));
        }
    };
    fact("Secret", m.secret.as_ref().map(|s| format!("`{s}`")));
    fact("Applies to", m.applies_to.clone());
    fact("Mode", m.mode.clone());
    fact("Role", m.role.clone());
    fact("Cadence", m.cadence_days.map(|d| format!("every {d} days")));
    fact("Average duration", m.average_duration.clone());
    fact(
        "Last validated",
        m.last_validated
            .as_ref()
            .map(|v| match &m.validation_method {
                Some(how) => format!("{v} ({how})"),
                None => v.clone(),
            }),
    );
    fact(
        "Egress",
        Some(crate::plan::egress::declared(
            &m.egress,
            &loaded.vendor_modules(),
        )),
    );
    b.push(Block::List(facts));
    b.push(Block::Para(format!(
        "Run: `runbook exec {shown_as}` · preview the writes: `runbook exec {shown_as} --dry-run` · rehearse against simulated vendors: `runbook exec {shown_as} --sandbox`"
    )));
    if !m.when_to_run.is_empty() {
        b.push(Block::Heading("When to run".into()));
        b.push(Block::List(m.when_to_run.clone()));
    }
    if !plan.params.is_empty() {
        b.push(Block::Heading("Parameters".into()));
        let rows = plan
            .params
            .iter()
            .map(|p| {
                let default = match (&p.default, p.secret, p.required) {
                    (_, true, _) => "(secret)".to_string(),
                    (Some(d), _, _) => format!("`{d}`"),
                    (None, _, true) => "(required)".to_string(),
                    (None, _, false) => String::new(),
                };
                let mut help = p.help.clone().unwrap_or_default();
                if let Some(env) = &p.env {
                    help.push_str(&format!(" (from `${env}` when set)"));
                }
                vec![format!("`{}`", p.name), default, help]
            })
            .collect();
        b.push(Block::Table(
            vec!["Param".into(), "Default".into(), "What it is".into()],
            rows,
        ));
        b.push(Block::Para(
            "Set one with `--param NAME=VALUE` (lists are comma-separated).".into(),
        ));
    }
    if !plan.prerequisites.is_empty() {
        b.push(Block::Heading("Prerequisites".into()));
        b.push(Block::Checklist(plan.prerequisites.clone()));
    }
    b.push(Block::Heading("Steps".into()));
    let program = loaded.program();
    for (i, s) in plan.steps.iter().enumerate() {
        b.extend(step(loaded, program, i + 1, s));
    }
    for (title, items) in [
        ("Rollback", &m.rollback),
        ("Gotchas", &m.gotchas),
        ("References", &m.references),
    ] {
        if !items.is_empty() {
            b.push(Block::Heading(title.into()));
            b.push(Block::List(items.clone()));
        }
    }
    b.push(Block::Heading("Questions and their answer ids".into()));
    b.push(Block::Para(
        "What the run can ask, by the id an answers file (`--answers FILE`) gives the answer under; `runbook answers` prints a file to fill in. `…` is a part the script computes at run time.".into(),
    ));
    let rows = loaded
        .prompts()
        .into_iter()
        .map(|p| {
            vec![
                format!("`{}`", p.id),
                if p.step.is_empty() {
                    "(the run)".into()
                } else {
                    format!("`{}`", p.step)
                },
                p.answer.to_string().replace('|', "\\|"),
                p.shown_question().replace('|', "\\|"),
            ]
        })
        .collect();
    b.push(Block::Table(
        vec![
            "Id".into(),
            "Step".into(),
            "Answer".into(),
            "Question".into(),
        ],
        rows,
    ));
    b
}

/// What a step without an undo says about going back.
fn without_undo(_loaded: &Runbook, program: &Program, s: &Step) -> Option<String> {
    if let Some(why) = &s.no_undo {
        return Some(format!("No undo needed: {why}."));
    }
    if s.irreversible.is_some() {
        return None;
    }
    // A stdlib step calls the runbook's closures, which analysis does not follow.
    if s.source.starts_with("<std/") {
        return None;
    }
    let unit = program.units.iter().position(|u| u.name == s.source)?;
    let host = crate::host::modules();
    let writes: Vec<String> = program
        .reachable_from(unit, s.run.fn_name(), s.run.curry().len() + 1)
        .into_iter()
        .filter(|c| c.mutates(&host))
        .map(|c| c.function)
        .collect();
    if writes.is_empty() {
        return Some("Undo: none needed (the step only reads).".into());
    }
    // By function name, so the page reads the same whatever order modules register in.
    let mut reasons: Vec<(String, &str)> = host
        .registry()
        .iter()
        .filter_map(|f| Some((f.qualified(), f.no_undo?)))
        .filter(|(name, _)| writes.iter().any(|w| w == name))
        .collect();
    reasons.sort();
    reasons.dedup();
    // Writes that need an undo, and none is given: what `check` flags, said as it is.
    if reasons.is_empty() {
        return Some(format!(
            "No undo: the step writes ({}) and declares none; `runbook check` flags it.",
            writes.join(", ")
        ));
    }
    let reasons: Vec<&str> = reasons.into_iter().map(|(_, why)| why).collect();
    Some(format!("No undo needed: {}.", reasons.join("; ")))
}

fn step(loaded: &Runbook, program: &Program, n: usize, s: &Step) -> Vec<Block> {
    let mut b = vec![Block::Subheading(format!("{n}. {} (`{}`)", s.title, s.id))];
    if let Some(d) = &s.description {
        b.push(Block::Para(d.clone()));
    }
    if let Some(q) = &s.confirm {
        b.push(Block::Para(format!("**Asks for confirmation:** {q}")));
    }
    if let Some(why) = &s.irreversible {
        b.push(Block::Para(format!(
            "**Irreversible — the point of no return.** {}",
            capitalise(why)
        )));
    }
    let calls = super::load::step_calls(program, s);
    if !calls.is_empty() {
        b.push(Block::Para(format!(
            "Vendor calls, in order: {}",
            super::program::Outlined::line(&calls)
        )));
    }
    if !s.checks.is_empty() {
        b.push(Block::Para("Checks:".into()));
        b.push(Block::List(s.checks.clone()));
    }
    let own = s.source == loaded.file().name;
    match (&s.undo, &s.no_undo) {
        (Some(undo), _) => match closure_code(loaded, undo).filter(|_| own) {
            Some(code) => {
                b.push(Block::Para("Undo (run by rollback):".into()));
                b.push(Block::Code(code));
            }
            None => {
                b.push(Block::Para(format!(
                    "Undo: provided by `{}` (run by rollback).",
                    s.source.trim_matches(|c| c == '<' || c == '>')
                )));
                for (name, code) in runbook_closures(loaded, undo) {
                    b.push(Block::Details(
                        format!("The runbook's `{name}`, which the undo calls"),
                        vec![Block::Code(code)],
                    ));
                }
            }
        },
        (None, _) => {
            if let Some(text) = without_undo(loaded, program, s) {
                b.push(Block::Para(text));
            }
        }
    }
    if own {
        if let Some(code) = closure_code(loaded, &s.run) {
            b.push(Block::Details(
                "What the step runs".into(),
                vec![Block::Code(code)],
            ));
        }
    } else {
        for (name, code) in runbook_closures(loaded, &s.run) {
            b.push(Block::Details(
                format!("The runbook's `{name}`, which the step calls"),
                vec![Block::Code(code)],
            ));
        }
    }
    b
}

/// The runbook's own closures a module's closure captured (what `rotation::steps` was given
/// as `create`, `validate`...), by the name the module gave them, with their code.
fn runbook_closures(loaded: &Runbook, f: &FnPtr) -> Vec<(String, String)> {
    let Some((.., def)) = loaded
        .callable()
        .shared_lib()
        .iter_script_fn_info()
        .find(|(.., name, _, _)| *name == f.fn_name())
    else {
        return Vec::new();
    };
    def.params
        .iter()
        .zip(f.curry())
        .filter_map(|(name, value)| {
            let captured = value.read_lock::<FnPtr>()?.clone();
            let code = closure_code(loaded, &captured)?;
            Some((name.to_string(), code))
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The source text of a closure written in the runbook: its body, dedented.
fn closure_code(loaded: &Runbook, f: &FnPtr) -> Option<String> {
    let script: &AST = loaded.script();
    let (.., def) = script
        .shared_lib()
        .iter_script_fn_info()
        .find(|(.., name, _, _)| *name == f.fn_name())?;
    let start = def.body.start_position();
    let end = def.body.end_position();
    let (sl, sc) = (start.line()?, start.position()?);
    let (el, ec) = (end.line()?, end.position()?);
    let lines: Vec<&str> = loaded.file().text.lines().collect();
    if sl == 0 || el < sl || el > lines.len() {
        return None;
    }
    // From just after `{` to just before `}`.
    let mut text: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate().take(el).skip(sl - 1) {
        let no = i + 1;
        let chars: Vec<char> = line.chars().collect();
        let from = if no == sl { sc.min(chars.len()) } else { 0 };
        let to = if no == el {
            ec.saturating_sub(1).min(chars.len())
        } else {
            chars.len()
        };
        text.push(chars[from.min(to)..to].iter().collect());
    }
    while text.first().is_some_and(|l| l.trim().is_empty()) {
        text.remove(0);
    }
    while text.last().is_some_and(|l| l.trim().is_empty()) {
        text.pop();
    }
    let pad = text
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let code: Vec<String> = text
        .iter()
        .map(|l| {
            l.get(pad..)
                .unwrap_or(l.trim_start())
                .trim_end()
                .to_string()
        })
        .collect();
    let code = code.join("\n");
    (!code.trim().is_empty()).then_some(code)
}

/// Markdown, as `docs/runbooks/*.md` holds it (without the final newline).
pub fn markdown(blocks: &[Block]) -> String {
    let mut out: Vec<String> = Vec::new();
    for block in blocks {
        md_block(block, &mut out);
    }
    out.join("\n\n")
}

fn md_block(block: &Block, out: &mut Vec<String>) {
    match block {
        Block::Title(t) => out.push(format!("# {t}")),
        Block::Heading(t) => out.push(format!("## {t}")),
        Block::Subheading(t) => out.push(format!("### {t}")),
        Block::Para(t) => out.push(t.clone()),
        Block::Quote(t) => out.push(format!("> {t}")),
        Block::List(items) => out.push(
            items
                .iter()
                .map(|i| format!("- {}", i.replace('\n', " ")))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Block::Checklist(items) => out.push(
            items
                .iter()
                .map(|i| format!("- [ ] {i}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Block::Table(head, rows) => {
            let cell = |c: &String| c.replace('|', "\\|").replace('\n', " ");
            let mut t = vec![
                format!(
                    "| {} |",
                    head.iter().map(cell).collect::<Vec<_>>().join(" | ")
                ),
                format!("|{}|", vec![" --- "; head.len()].join("|")),
            ];
            for r in rows {
                t.push(format!(
                    "| {} |",
                    r.iter().map(cell).collect::<Vec<_>>().join(" | ")
                ));
            }
            out.push(t.join("\n"));
        }
        Block::Code(code) => out.push(format!("```rhai\n{code}\n```")),
        Block::Details(summary, inner) => {
            // Markdown is not processed inside the HTML tag: write its code spans as HTML.
            let mut parts = vec![format!("<details><summary>{}</summary>", inline(summary))];
            for b in inner {
                md_block(b, &mut parts);
            }
            parts.push("</details>".into());
            out.push(parts.join("\n\n"));
        }
    }
}

/// A standalone HTML page.
pub fn html(blocks: &[Block], title: &str) -> String {
    let mut body = String::new();
    for b in blocks {
        html_block(b, &mut body);
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

const STYLE: &str = "body { font: 16px/1.5 system-ui, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2rem; }
h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; }
td, th { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
code, pre { font: 13px/1.45 ui-monospace, monospace; background: #f6f8fa; }
code { padding: .1rem .3rem; border-radius: 4px; }
pre { padding: .8rem; overflow-x: auto; border-radius: 6px; }
blockquote { color: #59636e; border-left: 4px solid #d0d7de; margin: 0; padding: 0 1rem; }
ul.check { list-style: none; padding-left: 1rem; }
details { margin: .5rem 0; }";

fn html_block(block: &Block, out: &mut String) {
    match block {
        Block::Title(t) => out.push_str(&format!("<h1>{}</h1>\n", inline(t))),
        Block::Heading(t) => out.push_str(&format!("<h2>{}</h2>\n", inline(t))),
        Block::Subheading(t) => out.push_str(&format!("<h3>{}</h3>\n", inline(t))),
        Block::Para(t) => out.push_str(&format!("<p>{}</p>\n", inline(t))),
        Block::Quote(t) => {
            out.push_str(&format!("<blockquote><p>{}</p></blockquote>\n", inline(t)))
        }
        Block::List(items) => {
            out.push_str("<ul>\n");
            for i in items {
                out.push_str(&format!("<li>{}</li>\n", inline(i)));
            }
            out.push_str("</ul>\n");
        }
        Block::Checklist(items) => {
            out.push_str("<ul class=\"check\">\n");
            for i in items {
                out.push_str(&format!(
                    "<li><label><input type=\"checkbox\"> {}</label></li>\n",
                    inline(i)
                ));
            }
            out.push_str("</ul>\n");
        }
        Block::Table(head, rows) => {
            out.push_str("<table>\n");
            if head.iter().any(|h| !h.is_empty()) {
                out.push_str("<tr>");
                for h in head {
                    out.push_str(&format!("<th>{}</th>", inline(h)));
                }
                out.push_str("</tr>\n");
            }
            for r in rows {
                out.push_str("<tr>");
                for c in r {
                    out.push_str(&format!("<td>{}</td>", inline(c)));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        }
        Block::Code(code) => out.push_str(&format!("<pre><code>{}</code></pre>\n", escape(code))),
        Block::Details(summary, inner) => {
            out.push_str(&format!(
                "<details><summary>{}</summary>\n",
                inline(summary)
            ));
            for b in inner {
                html_block(b, out);
            }
            out.push_str("</details>\n");
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `code`, **bold** and bare https:// links, the only inline Markdown the pages use.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
            continue;
        }
        let mut bold = false;
        for (j, piece) in escape(part).split("**").enumerate() {
            if j > 0 {
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
            }
            out.push_str(&link(piece));
        }
        if bold {
            out.push_str("</strong>");
        }
    }
    out
}

fn link(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            if w.starts_with("https://") {
                let url = w.trim_end_matches(['.', ',', ')', ';']);
                let rest = &w[url.len()..];
                format!("<a href=\"{url}\">{url}</a>{rest}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
