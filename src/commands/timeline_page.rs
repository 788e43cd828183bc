//! `runbook runs RUN_ID --html`: one self-contained page (no script, no network) with the
//! run's timeline drawn as SVG: a row per step with a bar per attempt (by duration and
//! outcome), its undo, each write as a mark coloured by outcome, the operator's answers and
//! approvals, later processes, and the point of no return. Secrets appear only as the
//! journal keeps them, as fingerprints; the whole page passes the redactor too.

use runbook_core::events::{ApprovalStatus, Event, Stamped, StepEnd, WriteOutcome};

/// What the page needs besides the events.
pub struct Page<'a> {
    pub run_id: &'a str,
    pub runbook: &'a str,
    pub target: &'a str,
    pub status: &'a str,
    pub actor: &'a str,
    /// Steps the runbook marks irreversible: where the first starts is the point of no
    /// return (empty when the runbook cannot be read any more).
    pub irreversible: &'a [String],
}

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 170.0;
const ROW: f64 = 30.0;
const TOP: f64 = 40.0;

fn esc(text: &str) -> String {
    let text = runbook_secret::redact(text);
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c if c.is_control() || runbook_secret::is_invisible(c) => {
                format!("U+{:04X}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

/// Milliseconds since the first event.
fn offsets(events: &[Stamped]) -> Vec<f64> {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as f64)
            .unwrap_or(0.0)
    };
    let first = events.first().map(|e| parse(&e.time)).unwrap_or(0.0);
    events.iter().map(|e| parse(&e.time) - first).collect()
}

fn outcome_colour(o: WriteOutcome) -> &'static str {
    match o {
        WriteOutcome::Applied => "#2e7d32",
        WriteOutcome::Failed => "#c62828",
        WriteOutcome::Unknown => "#ef6c00",
        WriteOutcome::NotSent => "#9e9e9e",
        _ => "#1565c0",
    }
}

fn end_colour(e: StepEnd) -> &'static str {
    match e {
        StepEnd::Completed => "#81c784",
        StepEnd::Failed => "#e57373",
        StepEnd::Aborted | StepEnd::Interrupted => "#bdbdbd",
    }
}

/// A write sent whose outcome is not recorded, drawn where it was sent.
fn unknown_write(function: &str, target: &str, why: &str, x: f64, y: f64) -> String {
    format!(
        "<circle class=\"write\" data-outcome=\"unknown\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{} on {}: {why}</title></circle>\n",
        y + ROW / 2.0 - 2.0,
        outcome_colour(WriteOutcome::Unknown),
        esc(function),
        esc(target),
    )
}

/// A step (or undo) whose end was never recorded: its process stopped in it.
fn unended(step: &str, undo: bool, from: f64, to: f64, y: f64, why: &str) -> String {
    let (what, top, height) = if undo {
        ("undo", y + ROW - 8.0, 6.0)
    } else {
        ("step", y + 4.0, ROW - 12.0)
    };
    format!(
        "<rect class=\"step-open\" data-step=\"{0}\" x=\"{1:.1}\" y=\"{2:.1}\" width=\"{3:.1}\" height=\"{4:.1}\" fill=\"none\" stroke=\"#ef6c00\" stroke-dasharray=\"4 3\"><title>{5} {0} · no end recorded: {6}</title></rect>\n",
        esc(step),
        from,
        top,
        (to - from).max(3.0),
        height,
        what,
        why
    )
}

/// The page.
pub fn render(page: &Page, events: &[Stamped]) -> String {
    let at = offsets(events);
    let span = at.iter().cloned().fold(1.0_f64, f64::max);
    let x = |ms: f64| LABEL + (ms / span) * (WIDTH - LABEL - 20.0);
    // One row per step, in the order they first appear.
    let mut rows: Vec<String> = Vec::new();
    for e in events {
        // A write made outside a step (typed at the REPL) gets a row of its own.
        let step = match &e.event {
            Event::StepStarted(s) => Some(&s.step),
            Event::UndoStarted { step } => Some(step),
            Event::Write(w) => Some(&w.step),
            _ => None,
        };
        if let Some(s) = step {
            if !rows.contains(s) {
                rows.push(s.clone());
            }
        }
    }
    let row_of = |step: &str| rows.iter().position(|r| r == step);
    let y = |row: usize| TOP + row as f64 * ROW;
    let mut svg = String::new();
    let mut legend_items: Vec<String> = Vec::new();
    let mut open: Vec<(String, f64, bool)> = Vec::new(); // (step, start, undo)
                                                         // Writes sent whose outcome is not recorded (yet): (step, function, target, sent at).
    let mut unanswered: Vec<(String, String, String, f64)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let t = at[i];
        match &e.event {
            Event::StepStarted(s) => open.push((s.step.clone(), t, false)),
            Event::Write(w) => {
                unanswered.push((w.step.clone(), w.function.clone(), w.target.clone(), t))
            }
            Event::UndoStarted { step } => open.push((step.clone(), t, true)),
            Event::StepFinished(f) => {
                let start = open
                    .iter()
                    .rposition(|(s, _, undo)| *s == f.step && !undo)
                    .map(|p| open.remove(p).1);
                if let (Some(start), Some(row)) = (start, row_of(&f.step)) {
                    let w = (x(t) - x(start)).max(3.0);
                    svg.push_str(&format!(
                        "<rect class=\"step-bar\" data-step=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} · {:?} · {} ms</title></rect>\n",
                        esc(&f.step),
                        x(start),
                        y(row) + 4.0,
                        w,
                        ROW - 12.0,
                        end_colour(f.outcome),
                        esc(&f.step),
                        f.outcome,
                        f.duration_ms.unwrap_or((t - start) as u64)
                    ));
                }
            }
            Event::UndoFinished(u) => {
                let start = open
                    .iter()
                    .rposition(|(s, _, undo)| *s == u.step && *undo)
                    .map(|p| open.remove(p).1);
                if let (Some(start), Some(row)) = (start, row_of(&u.step)) {
                    svg.push_str(&format!(
                        "<rect class=\"undo-bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"6\" fill=\"#7e57c2\"><title>undo {} · {:?}</title></rect>\n",
                        x(start),
                        y(row) + ROW - 8.0,
                        (x(t) - x(start)).max(3.0),
                        esc(&u.step),
                        u.outcome
                    ));
                }
            }
            Event::WriteOutcome(w) => {
                if let Some(p) = unanswered
                    .iter()
                    .rposition(|(s, f, g, _)| *s == w.step && *f == w.function && *g == w.target)
                {
                    unanswered.remove(p);
                }
                if let Some(row) = row_of(&w.step) {
                    svg.push_str(&format!(
                        "<circle class=\"write\" data-outcome=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{} on {}: {}</title></circle>\n",
                        w.outcome.as_str(),
                        x(t),
                        y(row) + ROW / 2.0 - 2.0,
                        outcome_colour(w.outcome),
                        esc(&w.function),
                        esc(&w.target),
                        w.outcome.as_str()
                    ));
                }
            }
            Event::Decision(d) => {
                let row = rows.len();
                svg.push_str(&format!(
                    "<path class=\"decision\" d=\"M{:.1} {:.1} l5 6 l-5 6 l-5 -6 z\" fill=\"#37474f\"><title>{}: {} ({:?})</title></path>\n",
                    x(t),
                    y(row) + 6.0,
                    esc(&d.id),
                    esc(&d.answer),
                    d.by
                ));
            }
            Event::Approval(a) => {
                let colour = match a.status {
                    ApprovalStatus::Approved => "#2e7d32",
                    ApprovalStatus::Requested => "#1565c0",
                    _ => "#c62828",
                };
                if let Some(row) = row_of(&a.step).or(Some(rows.len())) {
                    svg.push_str(&format!(
                        "<rect class=\"approval\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" fill=\"{colour}\"><title>approval {} · {}</title></rect>\n",
                        x(t) - 4.0,
                        y(row) - 2.0,
                        esc(&a.step),
                        a.status.as_str()
                    ));
                }
            }
            Event::RunResumed(r) => {
                // What was running when the process before it stopped ends there, unended,
                // and the writes it had sent without an answer may have taken effect.
                for (step, start, undo) in open.drain(..) {
                    if let Some(row) = row_of(&step) {
                        let why = "its process stopped in it";
                        svg.push_str(&unended(&step, undo, x(start), x(t), y(row), why));
                    }
                }
                for (step, function, target, at) in unanswered.drain(..) {
                    if let Some(row) = row_of(&step) {
                        let why = "sent, no answer recorded (it may have taken effect)";
                        svg.push_str(&unknown_write(&function, &target, why, x(at), y(row)));
                    }
                }
                svg.push_str(&format!(
                    "<line class=\"process\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#90a4ae\"><title>{3:?} by {4}</title></line>\n",
                    x(t),
                    TOP - 10.0,
                    y(rows.len() + 1),
                    r.entry,
                    esc(&r.actor)
                ));
            }
            _ => {}
        }
    }
    // A run still running has not ended its step yet, nor had its last answers: said so,
    // not taken for a process that stopped.
    let live = page.status == "running";
    let (step_why, write_why) = if live {
        ("the run is still in it", "sent, its answer not in yet")
    } else {
        (
            "its process stopped in it",
            "sent, no answer recorded (it may have taken effect)",
        )
    };
    for (step, start, undo) in &open {
        if let Some(row) = row_of(step) {
            svg.push_str(&unended(step, *undo, x(*start), x(span), y(row), step_why));
        }
    }
    // A write whose answer never came may have taken effect: drawn where it was sent.
    for (step, function, target, t) in &unanswered {
        if let Some(row) = row_of(step) {
            svg.push_str(&unknown_write(function, target, write_why, x(*t), y(row)));
        }
    }
    // The point of no return: where the first irreversible step started.
    let no_return = events.iter().zip(&at).find_map(|(e, t)| match &e.event {
        Event::StepStarted(s) if page.irreversible.contains(&s.step) => Some((*t, s.step.clone())),
        _ => None,
    });
    if let Some((t, step)) = &no_return {
        svg.push_str(&format!(
            "<line class=\"no-return\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#b71c1c\" stroke-dasharray=\"6 4\" stroke-width=\"2\"><title>point of no return: {3}</title></line>\n<text x=\"{0:.1}\" y=\"{4:.1}\" font-size=\"11\" fill=\"#b71c1c\">point of no return ({3})</text>\n",
            x(*t),
            TOP - 10.0,
            y(rows.len() + 1),
            esc(step),
            TOP - 14.0
        ));
    }
    let mut labels = String::new();
    for (i, r) in rows.iter().enumerate() {
        labels.push_str(&format!(
            "<text class=\"step-label\" x=\"6\" y=\"{:.1}\" font-size=\"12\">{}</text>\n",
            y(i) + ROW / 2.0 + 2.0,
            esc(r)
        ));
    }
    labels.push_str(&format!(
        "<text x=\"6\" y=\"{:.1}\" font-size=\"12\" fill=\"#37474f\">operator</text>\n",
        y(rows.len()) + ROW / 2.0 + 2.0
    ));
    for (name, colour) in [
        ("applied", "#2e7d32"),
        ("failed", "#c62828"),
        ("unknown", "#ef6c00"),
        ("not sent", "#9e9e9e"),
        ("pending", "#1565c0"),
    ] {
        legend_items.push(format!(
            "<span><svg width=\"10\" height=\"10\"><circle cx=\"5\" cy=\"5\" r=\"5\" fill=\"{colour}\"/></svg> write {name}</span>"
        ));
    }
    let height = y(rows.len() + 1) + 10.0;
    let seconds = span / 1000.0;
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>run {id}</title>\n<style>body{{font-family:sans-serif;margin:1.5em;color:#212121}}.target{{font-weight:bold}}.legend span{{margin-right:1.2em;font-size:13px}}svg.timeline{{border:1px solid #e0e0e0;background:#fafafa}}</style></head><body>\n<h1>Run {id}</h1>\n<p>{runbook} · <span class=\"target\">{target}</span> · {status} · actor {actor} · {seconds:.1}s from first record to last</p>\n<p class=\"legend\">{legend} <span>bar: a step attempt (green completed, red failed, grey stopped; dashed orange: no end recorded)</span> <span>purple: undo</span> <span>◆ operator answer</span> <span>■ approval</span> <span>dashed red: point of no return</span></p>\n<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\">\n{labels}{svg}</svg>\n",
        id = esc(page.run_id),
        runbook = esc(page.runbook),
        target = esc(page.target),
        status = esc(page.status),
        actor = esc(page.actor),
        legend = legend_items.join(" "),
    );
    if no_return.is_none() && page.irreversible.is_empty() {
        html.push_str("<p>No point of no return is drawn: the runbook marks no step irreversible, or it cannot be read any more.</p>\n");
    }
    html.push_str("<p>Secrets appear only as keyed fingerprints, as the journal keeps them.</p>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::{render, Page};
    use runbook_core::events::Stamped;

    fn events(lines: &[&str]) -> Vec<Stamped> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A write the dead process sent without an answer stays "may have taken effect" once
    /// another process takes the run over and runs: it was drawn as "not in yet", the live
    /// run's words, when it is the one write the operator has to check.
    #[test]
    fn a_dead_processs_unanswered_write_is_unknown_on_a_running_runs_page() {
        let run = r#""v":1,"run_id":"r1""#;
        let lines = [
            format!(
                r#"{{{run},"time":"2026-12-07T01:00:00Z","type":"run_started","runbook":"rb","source":{{"path":"rb.rhai","sha256":"00"}},"params":{{}},"actor":"a","host":"h","pid":1,"target":"production","effect":"apply","entry":"exec"}}"#
            ),
            format!(
                r#"{{{run},"time":"2026-12-07T01:00:01Z","type":"step_started","step":"propagate","attempt":1}}"#
            ),
            format!(
                r#"{{{run},"time":"2026-12-07T01:00:02Z","type":"write","step":"propagate","function":"heroku::set_config","target":"app-a"}}"#
            ),
            format!(
                r#"{{{run},"time":"2026-12-07T01:10:00Z","type":"run_resumed","actor":"b","host":"h","pid":2,"entry":"resume"}}"#
            ),
            format!(
                r#"{{{run},"time":"2026-12-07T01:10:01Z","type":"step_started","step":"propagate","attempt":1}}"#
            ),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let page = Page {
            run_id: "r1",
            runbook: "rb",
            target: "production",
            status: "running",
            actor: "a",
            irreversible: &[],
        };
        let html = render(&page, &events(&lines));
        assert!(
            html.contains(
                "heroku::set_config on app-a: sent, no answer recorded (it may have taken effect)"
            ),
            "{html}"
        );
        assert!(html.contains("step propagate · no end recorded: its process stopped in it"));
        assert!(html.contains("step propagate · no end recorded: the run is still in it"));
    }
}
