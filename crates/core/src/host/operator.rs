//! The operator channel of a run: every question goes through here, and every answer that
//! decides something (yes or no, an option, a default taken) is recorded in the run's
//! ledger with who gave it. Secrets and free text are never recorded.

use crate::events::{AnsweredBy, Decision, Event, Question};
use crate::ledger::LedgerWriter;
use crate::prompt::{Answered, PromptError, Prompter};
use runbook_secret::Secret;
use std::rc::Rc;

type R<T> = Result<T, PromptError>;

pub struct Operator {
    prompter: Prompter,
    ledger: Rc<LedgerWriter>,
}

impl Operator {
    pub fn new(prompter: Prompter, ledger: Rc<LedgerWriter>) -> Operator {
        Operator { prompter, ledger }
    }

    pub fn prompter(&self) -> &Prompter {
        &self.prompter
    }

    fn decided(&self, id: &str, kind: Question, question: &str, answer: &str, by: AnsweredBy) {
        self.ledger.record(Event::Decision(Decision {
            id: id.to_string(),
            kind,
            question: question.to_string(),
            answer: answer.to_string(),
            by,
        }));
    }

    pub fn confirm(&self, id: &str, question: &str) -> R<bool> {
        let Answered { value, by } = self.prompter.confirm(id, question)?;
        let answer = if value { "yes" } else { "no" };
        self.decided(id, Question::Confirm, question, answer, by);
        Ok(value)
    }

    /// A question only a person can answer (what they see of the consumers): `--yes` does
    /// not answer it; an `--answers` entry or the terminal must.
    pub fn confirm_judgement(&self, id: &str, question: &str) -> R<bool> {
        let Answered { value, by } = self.prompter.confirm_judgement(id, question)?;
        let answer = if value { "yes" } else { "no" };
        self.decided(id, Question::Confirm, question, answer, by);
        Ok(value)
    }

    pub fn choose(
        &self,
        id: &str,
        question: &str,
        options: &[String],
        yes_default: Option<&str>,
    ) -> R<String> {
        let Answered { value, by } = self.prompter.choose(id, question, options, yes_default)?;
        self.decided(id, Question::Choose, question, &value, by);
        Ok(value)
    }

    /// Free text: recorded only when nobody answered and the question's default was taken.
    pub fn ask(&self, id: &str, question: &str, default: Option<&str>) -> R<String> {
        let Answered { value, by } = self.prompter.ask(id, question, default)?;
        if by == AnsweredBy::Default {
            self.decided(id, Question::Ask, question, &value, by);
        }
        Ok(value)
    }

    /// A secret: never recorded, not even that it was asked.
    pub fn secret(&self, id: &str, question: &str) -> R<Secret> {
        self.prompter.secret(id, question)
    }

    /// A decision the operator typed as a command (the REPL's `:confirm always`), recorded
    /// as an answer to `question`.
    pub fn typed(&self, id: &str, question: &str, answer: &str) {
        self.decided(id, Question::Choose, question, answer, AnsweredBy::Operator);
    }

    /// Every item must be confirmed; each confirmation is recorded.
    pub fn checklist(&self, id: &str, items: &[String]) -> R<()> {
        let by = self.prompter.checklist(id, items)?;
        for item in items {
            self.decided(id, Question::Checklist, item, "yes", by);
        }
        Ok(())
    }
}
