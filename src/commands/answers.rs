//! `runbook answers`: an answers file to fill in, every question of the runbook commented out.

use crate::cli::AnswersArgs;
use crate::error::{exit, Result};
use crate::ui;
use runbook_core::runbook::{Runbook, SourceFile};

pub fn run(args: AnswersArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let path = settings.library.find(&args.runbook)?;
    let loaded = Runbook::load(SourceFile::read(&path)?)?;
    let m = loaded.plan().meta();
    let mut out = vec![
        format!("# Answers for {} ({})", m.title, m.id),
        format!(
            "# Use with: runbook exec {} --answers FILE (a question without an answer is asked at",
            path.display()
        ),
        "# a terminal; without one the run stops there). Uncomment what you answer ahead.".into(),
        "# `…` in an id is a part the script computes at run time: see the run's output.".into(),
        "# A secret answered here must be in a file only you can read (chmod 600).".into(),
    ];
    let mut step = None;
    for p in loaded.prompts() {
        if step.as_ref() != Some(&p.step) {
            out.push(String::new());
            out.push(if p.step.is_empty() {
                "# The run".to_string()
            } else {
                format!("# Step {}", p.step)
            });
            step = Some(p.step.clone());
        }
        out.push(format!("# {} ({})", p.shown_question(), p.answer));
        let example = p.answer.example(p.default.as_deref());
        out.push(format!("# \"{}\" = {example}", p.id));
    }
    ui::out(&out.join("\n"));
    Ok(exit::OK)
}
