//! Asking the operator: from an answers file, `--yes`, or the terminal. With none of them
//! a prompt fails at once, naming itself and how to answer it; it never hangs.

mod answers;
mod terminal;

pub use answers::Answers;

use runbook_secret::{Secret, Source};
use std::io::IsTerminal;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt '{id}' needs an answer, and there is no terminal to ask on")]
    NoAnswer { id: String, hint: String },
    #[error("answer to prompt '{id}' is not usable: {message}")]
    BadAnswer { id: String, message: String },
    #[error("the operator aborted the run")]
    Aborted,
    #[error("interrupted")]
    Interrupted,
    #[error("cannot turn off echo on this terminal, so a secret is not read from it")]
    NoEcho,
}

impl PromptError {
    pub fn help(&self) -> Option<String> {
        match self {
            PromptError::NoAnswer { hint, .. } => Some(hint.clone()),
            PromptError::BadAnswer { id, .. } => Some(format!(
                "fix the entry '{id}' in the --answers file, or answer on a terminal"
            )),
            PromptError::NoEcho => Some(
                "run on a real terminal, or give the value in an --answers file (chmod 600)".into(),
            ),
            _ => None,
        }
    }
}

type R<T> = Result<T, PromptError>;

/// The operator, as the run can reach them.
pub struct Prompter {
    answers: Answers,
    yes: bool,
    interactive: bool,
}

impl Prompter {
    pub fn new(answers: Answers, yes: bool) -> Self {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        Prompter {
            answers,
            yes,
            interactive,
        }
    }

    /// Whether the prompt with this id would be answered by a person at the terminal (not
    /// by an answers file): asking again can then get a different answer.
    pub fn asks_on_terminal(&self, id: &str) -> bool {
        self.interactive && self.answers.get(id).is_none()
    }

    /// Whether a confirmation with this id can be answered without hanging.
    pub fn can_confirm(&self, id: &str) -> bool {
        self.interactive || self.yes || self.answers.get(id).is_some()
    }

    pub fn yes(&self) -> bool {
        self.yes
    }

    fn missing(&self, id: &str, example: &str, yes_helps: bool) -> PromptError {
        let mut hint = format!("add `{id} = {example}` to a file passed with --answers");
        if yes_helps {
            hint.push_str(", or pass --yes");
        }
        hint.push_str(", or run on a terminal");
        PromptError::NoAnswer {
            id: id.to_string(),
            hint,
        }
    }

    pub fn confirm(&mut self, id: &str, question: &str) -> R<bool> {
        if let Some(v) = self.answers.get(id) {
            return v.as_bool().ok_or_else(|| PromptError::BadAnswer {
                id: id.into(),
                message: "expected true or false".into(),
            });
        }
        if self.yes {
            crate::ui::progress(&format!("  ? {question} yes (--yes)"));
            return Ok(true);
        }
        if !self.interactive {
            return Err(self.missing(id, "true", true));
        }
        terminal::confirm(question)
    }

    pub fn ask(&mut self, id: &str, question: &str, default: Option<&str>) -> R<String> {
        if let Some(v) = self.answers.get(id) {
            return answers::as_text(v).ok_or_else(|| PromptError::BadAnswer {
                id: id.into(),
                message: "expected a string".into(),
            });
        }
        if let (true, Some(d)) = (self.yes || !self.interactive, default) {
            crate::ui::progress(&format!("  ? {question} {d} (default)"));
            return Ok(d.to_string());
        }
        if !self.interactive {
            return Err(self.missing(id, "\"...\"", false));
        }
        terminal::ask(question, default)
    }

    pub fn secret(&mut self, id: &str, question: &str) -> R<Secret> {
        if let Some(v) = self.answers.get(id) {
            let text = answers::as_text(v).ok_or_else(|| PromptError::BadAnswer {
                id: id.into(),
                message: "expected a string".into(),
            })?;
            return Ok(Secret::new(text, Source::Answers { id: id.into() }));
        }
        if !self.interactive {
            return Err(self.missing(id, "\"...\"", false));
        }
        let value = terminal::secret(question)?;
        Ok(Secret::new(value, Source::Prompt { id: id.into() }))
    }

    pub fn choose(
        &mut self,
        id: &str,
        question: &str,
        options: &[String],
        yes_default: Option<&str>,
    ) -> R<String> {
        if let Some(v) = self.answers.get(id) {
            let text = answers::as_text(v).unwrap_or_default();
            if options.contains(&text) {
                return Ok(text);
            }
            return Err(PromptError::BadAnswer {
                id: id.into(),
                message: format!("expected one of {}", options.join(", ")),
            });
        }
        if let (true, Some(d)) = (self.yes, yes_default) {
            crate::ui::progress(&format!("  ? {question} {d} (--yes)"));
            return Ok(d.to_string());
        }
        if !self.interactive {
            let example = format!("\"{}\"", options.first().map(String::as_str).unwrap_or(""));
            return Err(self.missing(id, &example, yes_default.is_some()));
        }
        terminal::choose(question, options)
    }

    /// Every item must be confirmed; a "no" aborts the run.
    pub(crate) fn checklist(&mut self, id: &str, items: &[String]) -> R<()> {
        if items.is_empty() {
            return Ok(());
        }
        if let Some(v) = self.answers.get(id) {
            return match v.as_bool() {
                Some(true) => {
                    for item in items {
                        crate::ui::progress(&format!("  [x] {item}"));
                    }
                    Ok(())
                }
                Some(false) => Err(PromptError::Aborted),
                None => Err(PromptError::BadAnswer {
                    id: id.into(),
                    message: "expected true (all items confirmed)".into(),
                }),
            };
        }
        if self.yes {
            for item in items {
                crate::ui::progress(&format!("  [x] {item} (--yes)"));
            }
            return Ok(());
        }
        if !self.interactive {
            return Err(self.missing(id, "true", true));
        }
        for item in items {
            if !terminal::confirm(&format!("[ ] {item}"))? {
                return Err(PromptError::Aborted);
            }
        }
        Ok(())
    }
}
