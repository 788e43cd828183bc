//! Who wrote each row, as the database stamped it, held against who the rows say wrote
//! them. Any operator's login may append to the shared journal and audit tables, and a row
//! that chains says nothing about its writer: the server stamps each row with the login
//! that wrote it (`session_user`, set by a trigger whatever the writer sends), and these
//! checks make a row written under another login's name a broken record.
//!
//! A row stamped before the stamp existed (`login` is `None`) is not checked. What stays an
//! operator's own word is their own run: a login can still write rows for a run it started
//! or resumed, and those rows name it.

use crate::store::Stamp;
use serde_json::Value;

/// Why a run's journal does not hold by its stamps, if it does not: a stamped row written
/// by a login other than the one the process writing there names (the run's last
/// `run_started` or `run_resumed`, which names its own), or an approval the journal
/// credits to a login the database holds no such decision from.
pub fn journal(rows: &[Stamp], decisions: &[Stamp]) -> Result<(), String> {
    // The login the process writing at this point names, and the line that names it.
    let mut session: Option<(Option<String>, usize, String)> = None;
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let fields: Value = serde_json::from_str(&row.text).unwrap_or(Value::Null);
        let kind = fields["type"].as_str().unwrap_or_default();
        if matches!(kind, "run_started" | "run_resumed") {
            let named = fields["login"].as_str().map(str::to_string);
            session = Some((named, line, kind.to_string()));
        }
        let Some(stamp) = &row.login else { continue };
        match &session {
            Some((Some(named), ..)) if named == stamp => {}
            Some((named, at, kind)) => {
                return Err(format!(
                    "journal line {line} was written by the login {}, but the process writing there is {} (its {kind} on line {at})",
                    quoted(stamp),
                    named.as_deref().map_or("one that names no login".into(), |n| format!("{}'s", quoted(n)))
                ))
            }
            None => {
                return Err(format!(
                    "journal line {line} was written by the login {} before any line that starts or resumes the run",
                    quoted(stamp)
                ))
            }
        }
        if kind == "approval" {
            decided(line, &fields, decisions)?;
        }
    }
    Ok(())
}

/// An approval or denial the journal credits to a login: the database holds a decision
/// with that verdict stamped with that login.
fn decided(line: usize, approval: &Value, decisions: &[Stamp]) -> Result<(), String> {
    let status = approval["status"].as_str().unwrap_or_default();
    let Some(role) = approval["approver_role"].as_str() else {
        return Ok(());
    };
    if !matches!(status, "approved" | "denied") {
        return Ok(());
    }
    let found = decisions.iter().any(|d| {
        d.login.as_deref() == Some(role)
            && serde_json::from_str::<Value>(&d.text)
                .is_ok_and(|v| v["verdict"].as_str() == Some(status))
    });
    if found {
        return Ok(());
    }
    Err(format!(
        "journal line {line} records the run {status} by the login {}, but the database holds no such decision from that login",
        quoted(role)
    ))
}

/// An audit row whose stamp is not the login its entry names as its writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forged {
    /// The entry's place in the chain, from 1.
    pub entry: usize,
    /// The run the entry names.
    pub run_id: String,
    /// Which entry, and both logins.
    pub reason: String,
}

/// The audit rows whose stamp is not the login their entry names as its writer.
pub fn audit(rows: &[Stamp]) -> Vec<Forged> {
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(stamp) = &row.login else { continue };
        let fields: Value = serde_json::from_str(&row.text).unwrap_or(Value::Null);
        let named = fields["login"].as_str();
        if named == Some(stamp.as_str()) {
            continue;
        }
        problems.push(Forged {
            entry: i + 1,
            run_id: fields["run_id"].as_str().unwrap_or_default().to_string(),
            reason: format!(
                "audit entry {} was written by the login {}, but {}",
                i + 1,
                quoted(stamp),
                named.map_or("names no login".into(), |n| format!("names {}", quoted(n)))
            ),
        });
    }
    problems
}

/// A login as shown: quoted, control characters escaped (a login is the database's, but
/// a row's claim is anyone's text).
fn quoted(login: &str) -> String {
    format!("{:?}", crate::text::truncate(login, 80))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str, login: Option<&str>) -> Stamp {
        Stamp {
            text: text.into(),
            login: login.map(str::to_string),
        }
    }

    const STARTED_A: &str = r#"{"type":"run_started","login":"alice"}"#;
    const STEP: &str = r#"{"type":"step_started","step":"s"}"#;

    #[test]
    fn rows_written_by_the_login_the_run_names_hold() {
        let rows = [
            row(STARTED_A, Some("alice")),
            row(STEP, Some("alice")),
            row(r#"{"type":"run_resumed","login":"carol"}"#, Some("carol")),
            row(STEP, Some("carol")),
        ];
        assert_eq!(journal(&rows, &[]), Ok(()));
    }

    #[test]
    fn a_row_appended_by_another_login_under_the_runs_name_is_named() {
        let rows = [
            row(STARTED_A, Some("alice")),
            row(
                r#"{"type":"run_finished","status":"succeeded"}"#,
                Some("mallory"),
            ),
        ];
        assert_eq!(
            journal(&rows, &[]),
            Err(r#"journal line 2 was written by the login "mallory", but the process writing there is "alice"'s (its run_started on line 1)"#.into())
        );
    }

    #[test]
    fn a_start_that_names_another_login_than_wrote_it_is_named() {
        let rows = [row(STARTED_A, Some("mallory"))];
        assert!(journal(&rows, &[])
            .unwrap_err()
            .starts_with(r#"journal line 1 was written by the login "mallory""#));
    }

    #[test]
    fn rows_from_before_the_stamp_are_not_checked() {
        let rows = [
            row(STARTED_A, None),
            row(STEP, None),
            row(STEP, Some("alice")),
        ];
        assert_eq!(journal(&rows, &[]), Ok(()));
        let rows = [row(STEP, Some("alice"))];
        assert!(journal(&rows, &[])
            .unwrap_err()
            .contains("before any line that starts or resumes the run"));
    }

    #[test]
    fn an_approval_needs_the_approvers_own_stamped_decision() {
        let approval = r#"{"type":"approval","step":"s","status":"approved","approver":"bob","approver_role":"bob"}"#;
        let rows = [row(STARTED_A, Some("alice")), row(approval, Some("alice"))];
        let bobs = row(
            r#"{"nonce":"n","verdict":"approved","by":"bob"}"#,
            Some("bob"),
        );
        assert_eq!(journal(&rows, std::slice::from_ref(&bobs)), Ok(()));
        // Written by alice in bob's name: stamped alice.
        let forged = row(
            r#"{"nonce":"n","verdict":"approved","by":"bob","role":"bob"}"#,
            Some("alice"),
        );
        assert_eq!(
            journal(&rows, &[forged]),
            Err(r#"journal line 2 records the run approved by the login "bob", but the database holds no such decision from that login"#.into())
        );
        let denied = row(
            r#"{"nonce":"n","verdict":"denied","by":"bob"}"#,
            Some("bob"),
        );
        assert!(journal(&rows, &[denied]).is_err());
        // A timeout or a refused decision credits nobody.
        let timeout = r#"{"type":"approval","step":"s","status":"timeout","approver_role":"bob"}"#;
        assert_eq!(
            journal(
                &[row(STARTED_A, Some("alice")), row(timeout, Some("alice"))],
                &[]
            ),
            Ok(())
        );
    }

    #[test]
    fn an_audit_entry_names_the_login_stamped_on_it() {
        let rows = [
            row(r#"{"actor":"a","login":"alice"}"#, Some("alice")),
            row(r#"{"actor":"a"}"#, None),
            row(r#"{"actor":"a","login":"alice"}"#, Some("mallory")),
            row(r#"{"actor":"a"}"#, Some("mallory")),
        ];
        let found: Vec<String> = audit(&rows).into_iter().map(|f| f.reason).collect();
        assert_eq!(
            found,
            vec![
                r#"audit entry 3 was written by the login "mallory", but names "alice""#
                    .to_string(),
                r#"audit entry 4 was written by the login "mallory", but names no login"#
                    .to_string(),
            ]
        );
    }
}
