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

/// Why a run's journal does not hold by its stamps, if it does not:
/// - a stamped row written by a login other than the one the process writing there names
///   (the run's last `run_started` or `run_resumed`, which names its own);
/// - a row without a stamp after a stamped one (written while the trigger was off);
/// - an approval or denial the journal credits to a login the database holds no such
///   decision from, for that request (its nonce), or to the login running the run itself,
///   or to no login at all.
pub fn journal(rows: &[Stamp], decisions: &[Stamp]) -> Result<(), String> {
    // The login of the process writing at this point (its start line's stamp, or before the
    // stamp its claim), and the line that started it.
    let mut session: Option<(Option<String>, usize, String)> = None;
    let mut stamped_since: Option<usize> = None;
    // Each step's request nonce, as its `requested` line gave it.
    let mut requested: Vec<(String, String)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let fields: Value = serde_json::from_str(&row.text).unwrap_or(Value::Null);
        let kind = fields["type"].as_str().unwrap_or_default();
        if matches!(kind, "run_started" | "run_resumed") {
            let named = fields["login"].as_str();
            if let (Some(stamp), Some(named)) = (&row.login, named) {
                if contradicts(named, stamp) {
                    return Err(format!(
                        "journal line {line} was written by the login {}, but its {kind} names {}",
                        quoted(stamp),
                        quoted(named)
                    ));
                }
            }
            let login = row.login.clone().or(named.map(str::to_string));
            session = Some((login, line, kind.to_string()));
        }
        let Some(stamp) = &row.login else {
            if let Some(first) = stamped_since {
                return Err(unstamped("journal line", line, first));
            }
            continue;
        };
        stamped_since.get_or_insert(line);
        let running = match &session {
            Some((Some(login), ..)) if !contradicts(login, stamp) => login,
            Some((login, at, kind)) => {
                return Err(format!(
                    "journal line {line} was written by the login {}, but the process writing there is {} (its {kind} on line {at})",
                    quoted(stamp),
                    login.as_deref().map_or("one that names no login".into(), |n| format!("{}'s", quoted(n)))
                ))
            }
            None => {
                return Err(format!(
                    "journal line {line} was written by the login {} before any line that starts or resumes the run",
                    quoted(stamp)
                ))
            }
        };
        if kind == "approval" {
            let approval = Approval::of(&fields);
            if approval.status == "requested" {
                if let Some(nonce) = approval.nonce {
                    if requested.iter().any(|(_, n)| n == nonce) {
                        return Err(format!(
                            "journal line {line} files a request under a nonce an earlier request used"
                        ));
                    }
                    requested.push((approval.step.to_string(), nonce.to_string()));
                }
            }
            approval.given(line, running, &requested, decisions)?;
        }
    }
    Ok(())
}

/// Whether a login a row names is another than the one stamped on it. A name the redactor
/// masked (a login that is also a secret's value, or holds one) says nothing either way:
/// the row is the stamped login's.
fn contradicts(named: &str, stamp: &str) -> bool {
    named != stamp && !named.contains("secret(…")
}

/// An approval line's fields that the checks read.
struct Approval<'a> {
    step: &'a str,
    status: &'a str,
    role: Option<&'a str>,
    nonce: Option<&'a str>,
}

impl<'a> Approval<'a> {
    fn of(fields: &'a Value) -> Approval<'a> {
        Approval {
            step: fields["step"].as_str().unwrap_or_default(),
            status: fields["status"].as_str().unwrap_or_default(),
            role: fields["approver_role"].as_str(),
            nonce: fields["nonce"].as_str(),
        }
    }

    /// An approval or denial, on a stamped line: credited to a login other than the one
    /// running the run, which the database holds that decision from (for the request the
    /// journal filed under that nonce, when the line names one).
    fn given(
        &self,
        line: usize,
        running: &str,
        requested: &[(String, String)],
        decisions: &[Stamp],
    ) -> Result<(), String> {
        if !matches!(self.status, "approved" | "denied") {
            return Ok(());
        }
        let (step, status) = (self.step, self.status);
        let Some(role) = self.role else {
            return Err(format!(
                "journal line {line} records step '{step}' {status} by no login, on a database that stamps every decision with its login"
            ));
        };
        // A login the redactor masked (it is also a secret's value) cannot be read back: the
        // decision for this request, from a login other than the run's, stands for it.
        let masked = role.contains("secret(…");
        if !masked && role == running {
            return Err(format!(
                "journal line {line} records step '{step}' {status} by the login {}, the login running the run: four eyes needs another person's",
                quoted(role)
            ));
        }
        if let Some(nonce) = self.nonce {
            if !requested.iter().any(|(s, n)| s == step && n == nonce) {
                return Err(format!(
                    "journal line {line} records step '{step}' {status} for a request the journal never filed for it"
                ));
            }
        }
        if masked && self.nonce.is_none() {
            return Err(format!(
                "journal line {line} records step '{step}' {status} by a masked login, with no request nonce to tie it to a decision"
            ));
        }
        let found = decisions.iter().any(|d| {
            let v: Value = serde_json::from_str(&d.text).unwrap_or(Value::Null);
            let by = match masked {
                true => d.login.as_deref().is_some_and(|l| l != running),
                false => d.login.as_deref() == Some(role),
            };
            by && v["verdict"].as_str() == Some(status)
                && self.nonce.is_none_or(|n| v["nonce"].as_str() == Some(n))
        });
        if found {
            return Ok(());
        }
        Err(format!(
            "journal line {line} records step '{step}' {status} by the login {}, but the database holds no such decision from that login{}",
            quoted(role),
            if self.nonce.is_some() { " for that request" } else { "" }
        ))
    }
}

/// A row without a stamp after a stamped one: the trigger that stamps was off.
fn unstamped(what: &str, at: usize, first: usize) -> String {
    format!(
        "{what} {at} carries no login stamp, after {} stamped from {what} {first} on: it was written while the stamping trigger was switched off (only the tables' owner or a superuser can)",
        if what == "journal line" { "lines" } else { "entries" }
    )
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

/// The audit rows whose stamp is not the login their entry names as its writer, and those
/// without a stamp after a stamped one. An entry that names no login (one a version before
/// the stamp wrote while the database was migrated) is the stamped login's, and claims
/// no other.
pub fn audit(rows: &[Stamp]) -> Vec<Forged> {
    let mut problems = Vec::new();
    let mut stamped_since: Option<usize> = None;
    for (i, row) in rows.iter().enumerate() {
        let entry = i + 1;
        let fields: Value = serde_json::from_str(&row.text).unwrap_or(Value::Null);
        let run_id = fields["run_id"].as_str().unwrap_or_default().to_string();
        let Some(stamp) = &row.login else {
            if let Some(first) = stamped_since {
                problems.push(Forged {
                    entry,
                    run_id,
                    reason: unstamped("audit entry", entry, first),
                });
            }
            continue;
        };
        stamped_since.get_or_insert(entry);
        match fields["login"].as_str() {
            Some(named) if contradicts(named, stamp) => problems.push(Forged {
                entry,
                run_id,
                reason: format!(
                    "audit entry {entry} was written by the login {}, but names {}",
                    quoted(stamp),
                    quoted(named)
                ),
            }),
            _ => {}
        }
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
        assert_eq!(
            journal(&rows, &[]),
            Err(r#"journal line 1 was written by the login "mallory", but its run_started names "alice""#.into())
        );
    }

    /// A login that is also a secret's value is masked in the rows that name it: the rows
    /// are the stamped login's, not a forgery (and the masked name claims no other).
    #[test]
    fn a_login_the_redactor_masked_is_the_stamped_ones() {
        let masked = r#"{"type":"run_started","login":"secret(…ce)"}"#;
        let rows = [row(masked, Some("alice")), row(STEP, Some("alice"))];
        assert_eq!(journal(&rows, &[]), Ok(()));
        let rows = [row(masked, Some("alice")), row(STEP, Some("mallory"))];
        assert!(journal(&rows, &[])
            .unwrap_err()
            .contains(r#"the process writing there is "alice"'s"#));
        let entries = [row(r#"{"login":"secret(…ce)"}"#, Some("alice"))];
        assert!(audit(&entries).is_empty());
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
            Err(r#"journal line 2 records step 's' approved by the login "bob", but the database holds no such decision from that login"#.into())
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

    /// The decision must answer the request the journal filed for that step (its nonce):
    /// bob's approval of one step does not approve another.
    #[test]
    fn a_decision_answers_one_request_of_one_step() {
        let requested = |step: &str, nonce: &str| {
            row(
                &format!(
                    r#"{{"type":"approval","step":"{step}","status":"requested","nonce":"{nonce}"}}"#
                ),
                Some("alice"),
            )
        };
        let approved = |step: &str, nonce: &str| {
            row(
                &format!(
                    r#"{{"type":"approval","step":"{step}","status":"approved","approver_role":"bob","nonce":"{nonce}"}}"#
                ),
                Some("alice"),
            )
        };
        let bobs = [row(
            r#"{"nonce":"n1","verdict":"approved","by":"bob"}"#,
            Some("bob"),
        )];
        let honest = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            approved("a", "n1"),
        ];
        assert_eq!(journal(&honest, &bobs), Ok(()));
        let other_step = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            approved("a", "n1"),
            requested("b", "n2"),
            approved("b", "n2"),
        ];
        assert_eq!(
            journal(&other_step, &bobs),
            Err(r#"journal line 5 records step 'b' approved by the login "bob", but the database holds no such decision from that login for that request"#.into())
        );
        let borrowed = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            approved("b", "n1"),
        ];
        assert_eq!(
            journal(&borrowed, &bobs),
            Err("journal line 3 records step 'b' approved for a request the journal never filed for it".into())
        );
        let reused = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            requested("b", "n1"),
        ];
        assert!(journal(&reused, &bobs)
            .unwrap_err()
            .contains("a nonce an earlier request used"));
    }

    #[test]
    fn an_approval_by_the_runs_own_login_or_by_no_login_is_not_four_eyes() {
        let own = r#"{"type":"approval","step":"s","status":"approved","approver_role":"alice"}"#;
        let alices = [row(r#"{"verdict":"approved","by":"al"}"#, Some("alice"))];
        assert_eq!(
            journal(&[row(STARTED_A, Some("alice")), row(own, Some("alice"))], &alices),
            Err(r#"journal line 2 records step 's' approved by the login "alice", the login running the run: four eyes needs another person's"#.into())
        );
        let nobody = r#"{"type":"approval","step":"s","status":"denied","approver":"bob"}"#;
        assert!(journal(
            &[row(STARTED_A, Some("alice")), row(nobody, Some("alice"))],
            &[]
        )
        .unwrap_err()
        .contains("records step 's' denied by no login"));
        // Before the stamp, a line is not held to it.
        assert_eq!(
            journal(&[row(STARTED_A, None), row(nobody, None)], &[]),
            Ok(())
        );
    }

    #[test]
    fn a_masked_approver_stands_on_the_requests_decision_from_another_login() {
        let rows = |role_line: &str| {
            [
                row(STARTED_A, Some("alice")),
                row(
                    r#"{"type":"approval","step":"s","status":"requested","nonce":"n1"}"#,
                    Some("alice"),
                ),
                row(role_line, Some("alice")),
            ]
        };
        let masked = r#"{"type":"approval","step":"s","status":"approved","approver_role":"secret(…ob)","nonce":"n1"}"#;
        let bobs = [row(r#"{"nonce":"n1","verdict":"approved"}"#, Some("bob"))];
        assert_eq!(journal(&rows(masked), &bobs), Ok(()));
        let alices = [row(r#"{"nonce":"n1","verdict":"approved"}"#, Some("alice"))];
        assert!(journal(&rows(masked), &alices).is_err());
        let no_nonce =
            r#"{"type":"approval","step":"s","status":"approved","approver_role":"secret(…ob)"}"#;
        assert!(journal(&rows(no_nonce), &bobs)
            .unwrap_err()
            .contains("by a masked login, with no request nonce"));
    }

    #[test]
    fn a_row_without_a_stamp_after_a_stamped_one_is_named() {
        let rows = [row(STARTED_A, Some("alice")), row(STEP, None)];
        assert_eq!(
            journal(&rows, &[]),
            Err("journal line 2 carries no login stamp, after lines stamped from journal line 1 on: it was written while the stamping trigger was switched off (only the tables' owner or a superuser can)".into())
        );
        let entries = [row(r#"{"login":"alice"}"#, Some("alice")), row("{}", None)];
        assert_eq!(audit(&entries)[0].entry, 2);
    }

    #[test]
    fn an_audit_entry_names_the_login_stamped_on_it() {
        let rows = [
            row(
                r#"{"actor":"a","login":"alice","run_id":"r1"}"#,
                Some("alice"),
            ),
            row(
                r#"{"actor":"a","login":"alice","run_id":"r1"}"#,
                Some("mallory"),
            ),
            // Written by a version before the stamp during the migration: it names none.
            row(r#"{"actor":"a"}"#, Some("mallory")),
        ];
        let found = audit(&rows);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].reason,
            r#"audit entry 2 was written by the login "mallory", but names "alice""#
        );
        assert_eq!(found[0].run_id, "r1");
    }
}
