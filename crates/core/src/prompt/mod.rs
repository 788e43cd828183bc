//! Asking the operator: from an answers file, `--yes`, or a person at a terminal (the
//! binary provides the terminal: the engine never draws one). With none of them a prompt
//! fails at once, naming itself and how to answer it; it never hangs.

mod answers;

pub use answers::Answers;

pub use crate::events::AnsweredBy;
use runbook_secret::{Secret, Source};

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

/// A person at a terminal: how the binary asks. Each call waits for an answer (Ctrl-C is
/// `Interrupted`, end of input `Aborted`).
pub trait Terminal {
    fn confirm(&self, question: &str) -> R<bool>;
    fn ask(&self, question: &str, default: Option<&str>) -> R<String>;
    /// Reads a secret without echoing it (or refuses with `NoEcho`).
    fn secret(&self, question: &str) -> R<String>;
    fn choose(&self, question: &str, options: &[String]) -> R<String>;
}

/// An answer and who gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered<T> {
    pub value: T,
    pub by: AnsweredBy,
}

impl<T> Answered<T> {
    fn by(value: T, by: AnsweredBy) -> Self {
        Answered { value, by }
    }
}

/// The operator, as the run can reach them: answers file, `--yes`, a terminal.
pub struct Prompter {
    answers: Answers,
    yes: bool,
    terminal: Option<Box<dyn Terminal>>,
}

impl Prompter {
    /// `terminal`: a person to ask, when there is one (stdin and stderr are terminals).
    pub fn new(answers: Answers, yes: bool, terminal: Option<Box<dyn Terminal>>) -> Self {
        Prompter {
            answers,
            yes,
            terminal,
        }
    }

    /// Nobody to ask, and no answers: every question fails at once, naming itself.
    pub fn unattended() -> Self {
        Prompter::new(Answers::default(), false, None)
    }

    fn interactive(&self) -> bool {
        self.terminal.is_some()
    }

    /// Whether a person can be asked (a terminal), or only the answers file and `--yes`
    /// answer.
    pub fn has_terminal(&self) -> bool {
        self.interactive()
    }

    /// The ids the answers file answers.
    pub fn answered_ids(&self) -> impl Iterator<Item = &str> {
        self.answers.keys()
    }

    /// Whether the prompt with this id would be answered by a person at the terminal (not
    /// by an answers file): asking again can then get a different answer.
    pub fn asks_on_terminal(&self, id: &str) -> bool {
        self.interactive() && self.answers.get(id).is_none()
    }

    /// Whether a confirmation with this id can be answered without hanging.
    pub fn can_confirm(&self, id: &str) -> bool {
        self.interactive() || self.yes || self.answers.get(id).is_some()
    }

    pub fn yes(&self) -> bool {
        self.yes
    }

    /// The error of a prompt nobody can answer: what it asks (the question names what the
    /// script found, which the operator needs to decide) and how to answer it.
    fn missing(&self, id: &str, question: &str, example: &str, yes_helps: bool) -> PromptError {
        let mut hint = format!(
            "it asks: {}\nadd `{id} = {example}` to a file passed with --answers",
            runbook_secret::one_line(question)
        );
        if yes_helps {
            hint.push_str(", or pass --yes");
        }
        hint.push_str(", or run on a terminal");
        PromptError::NoAnswer {
            id: id.to_string(),
            hint,
        }
    }

    fn bad(id: &str, message: &str) -> PromptError {
        PromptError::BadAnswer {
            id: id.into(),
            message: message.into(),
        }
    }

    pub fn confirm(&self, id: &str, question: &str) -> R<Answered<bool>> {
        self.confirm_as(id, question, true)
    }

    /// A question only a person can answer (`prompt::confirm(q, #{ judgement: true })`):
    /// `--yes` does not answer it, so automation says it in an `--answers` entry, on purpose.
    pub fn confirm_judgement(&self, id: &str, question: &str) -> R<Answered<bool>> {
        self.confirm_as(id, question, false)
    }

    fn confirm_as(&self, id: &str, question: &str, yes_answers: bool) -> R<Answered<bool>> {
        if let Some(v) = self.answers.get(id) {
            let yes = v
                .as_bool()
                .ok_or_else(|| Self::bad(id, "expected true or false"))?;
            return Ok(Answered::by(yes, AnsweredBy::Answers));
        }
        if self.yes && yes_answers {
            return Ok(Answered::by(true, AnsweredBy::Yes));
        }
        match &self.terminal {
            Some(t) => t
                .confirm(question)
                .map(|v| Answered::by(v, AnsweredBy::Operator)),
            None if !yes_answers && self.yes => {
                let mut e = self.missing(id, question, "true", false);
                if let PromptError::NoAnswer { hint, .. } = &mut e {
                    *hint = format!(
                        "a judgement --yes does not make (only a person can see it); {hint}"
                    );
                }
                Err(e)
            }
            None => Err(self.missing(id, question, "true", yes_answers)),
        }
    }

    pub fn ask(&self, id: &str, question: &str, default: Option<&str>) -> R<Answered<String>> {
        if let Some(v) = self.answers.get(id) {
            let text = answers::as_text(v).ok_or_else(|| Self::bad(id, "expected a string"))?;
            return Ok(Answered::by(text, AnsweredBy::Answers));
        }
        if let (true, Some(d)) = (self.yes || !self.interactive(), default) {
            return Ok(Answered::by(d.to_string(), AnsweredBy::Default));
        }
        match &self.terminal {
            Some(t) => t
                .ask(question, default)
                .map(|v| Answered::by(v, AnsweredBy::Operator)),
            None => Err(self.missing(id, question, "\"...\"", false)),
        }
    }

    pub fn secret(&self, id: &str, question: &str) -> R<Secret> {
        if let Some(v) = self.answers.get(id) {
            let text = answers::as_text(v).ok_or_else(|| Self::bad(id, "expected a string"))?;
            return Ok(Secret::new(text, Source::Answers { id: id.into() }));
        }
        match &self.terminal {
            Some(t) => Ok(Secret::new(
                t.secret(question)?,
                Source::Prompt { id: id.into() },
            )),
            None => Err(self.missing(id, question, "\"...\"", false)),
        }
    }

    pub fn choose(
        &self,
        id: &str,
        question: &str,
        options: &[String],
        yes_default: Option<&str>,
    ) -> R<Answered<String>> {
        if let Some(v) = self.answers.get(id) {
            let text = answers::as_text(v).unwrap_or_default();
            if options.contains(&text) {
                return Ok(Answered::by(text, AnsweredBy::Answers));
            }
            return Err(Self::bad(
                id,
                &format!("expected one of {}", options.join(", ")),
            ));
        }
        if let (true, Some(d)) = (self.yes, yes_default) {
            return Ok(Answered::by(d.to_string(), AnsweredBy::Yes));
        }
        match &self.terminal {
            Some(t) => t
                .choose(question, options)
                .map(|v| Answered::by(v, AnsweredBy::Operator)),
            None => {
                let example = format!("\"{}\"", options.first().map(String::as_str).unwrap_or(""));
                let asked = format!("{question} (one of: {})", options.join(" | "));
                Err(self.missing(id, &asked, &example, yes_default.is_some()))
            }
        }
    }

    /// Every item must be confirmed; a "no" aborts the run. Returns who confirmed them.
    pub fn checklist(&self, id: &str, items: &[String]) -> R<AnsweredBy> {
        if let Some(v) = self.answers.get(id) {
            return match v.as_bool() {
                Some(true) => Ok(AnsweredBy::Answers),
                Some(false) => Err(PromptError::Aborted),
                None => Err(Self::bad(id, "expected true (all items confirmed)")),
            };
        }
        if self.yes || items.is_empty() {
            return Ok(AnsweredBy::Yes);
        }
        let Some(t) = &self.terminal else {
            let asked = format!("confirm every item: {}", items.join("; "));
            return Err(self.missing(id, &asked, "true", true));
        };
        for item in items {
            if !t.confirm(&format!("[ ] {item}"))? {
                return Err(PromptError::Aborted);
            }
        }
        Ok(AnsweredBy::Operator)
    }
}
