//! Who wrote each row, as the database stamped it, held against who the rows say wrote
//! them. Any operator's login may append to the shared journal and audit tables, and a row
//! that chains says nothing about its writer: the server stamps each row with the login
//! that wrote it (`session_user`, set by a trigger whatever the writer sends), and these
//! checks make a row written under another login's name a broken record.
//!
//! A row stamped before the stamp existed (`login` is `None`) is not checked. What stays an
//! operator's own word is what they write in their own name: a run they started, or one
//! they took over with a `run_resumed` naming their login.
//!
//! A login goes through the redactor with the rest of its line: one that is also a secret's
//! value is written as its mask (`secret(…xy)`), which names the stamped login when it is
//! that login's mask.

use crate::store::{Decided, Stamp};
use serde_json::Value;

/// Why a run's journal does not hold by its stamps, if it does not:
/// - a start line (`run_started`, `run_resumed`) that names no login, or another than the
///   one stamped on it; a stamped row written by a login other than the one that started
///   the process writing there;
/// - a row without a stamp after a stamped one (written while the trigger was off);
/// - an approval or denial without the nonce of a request the journal filed for that step,
///   a second one on the same request, or one the database holds no decision for: by the
///   login the line credits, with that verdict, on a request for that step under that
///   nonce, from a login other than the one that filed the request.
pub fn journal(rows: &[Stamp], decisions: &[Decided]) -> Result<(), String> {
    // The login of the process writing at this point (its start line's stamp, or before the
    // stamp its claim), and the line that started it.
    let mut session: Option<(Option<String>, usize, String)> = None;
    let mut stamped_since: Option<usize> = None;
    let mut requests: Vec<Filed> = Vec::new();
    // The nonces decided so far, and on which line.
    let mut decided: Vec<(String, usize)> = Vec::new();
    // The decisions lines were matched to (an index into `decisions`), and those lines.
    let mut credited: Vec<(usize, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let fields: Value = serde_json::from_str(&row.text).unwrap_or(Value::Null);
        let kind = fields["type"].as_str().unwrap_or_default();
        if matches!(kind, "run_started" | "run_resumed") {
            let named = fields["login"].as_str();
            if let Some(stamp) = &row.login {
                if !names(named, stamp) {
                    return Err(format!(
                        "journal line {line} was written by the login {}, but its {kind} names {}",
                        quoted(stamp),
                        named.map_or("no login".into(), quoted)
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
        match &session {
            Some((Some(login), ..)) if login == stamp => {}
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
        }
        if kind != "approval" {
            continue;
        }
        let approval = Approval::of(&fields);
        match approval.status {
            "requested" => {
                let Some(nonce) = approval.nonce else {
                    return Err(format!(
                        "journal line {line} files a request for step '{}' with no nonce",
                        approval.step
                    ));
                };
                if let Some(earlier) = requests.iter().find(|r| r.nonce == nonce) {
                    return Err(format!(
                        "journal line {line} files a request under the nonce the request on line {} used",
                        earlier.line
                    ));
                }
                requests.push(Filed {
                    step: approval.step.to_string(),
                    nonce: nonce.to_string(),
                    by: stamp.clone(),
                    line,
                });
            }
            "approved" | "denied" => {
                if let Some(nonce) = approval.nonce {
                    if let Some((_, at)) = decided.iter().find(|(n, _)| n == nonce) {
                        return Err(format!(
                            "journal line {line} records a second decision on the request line {at} recorded one for"
                        ));
                    }
                    decided.push((nonce.to_string(), line));
                }
                let d = approval.given(line, &requests, decisions, &credited)?;
                credited.push((d, line));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A request the journal filed: for which step, under which nonce, by which login, where.
struct Filed {
    step: String,
    nonce: String,
    by: String,
    line: usize,
}

/// Whether the login a line names is the one stamped on it: the same, or its mask.
fn names(named: Option<&str>, stamp: &str) -> bool {
    named.is_some_and(|n| n == stamp || n == runbook_secret::mask(stamp))
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

    /// An approval or denial on a stamped line: for a request the journal filed for its
    /// step, and given in the database by the login the line credits (or whose mask it
    /// gives), with this verdict, on a request for this step under this nonce, from a login
    /// other than the one that filed it.
    /// `credited`: the decisions earlier lines were matched to, and those lines; the one this
    /// line is matched to comes back. One decision credits one line: a masked nonce
    /// (`secret(…)`) matches many, and two lines must not both stand on one approval.
    fn given(
        &self,
        line: usize,
        requests: &[Filed],
        decisions: &[Decided],
        credited: &[(usize, usize)],
    ) -> Result<usize, String> {
        let (step, status) = (self.step, self.status);
        let Some(nonce) = self.nonce else {
            return Err(format!(
                "journal line {line} records step '{step}' {status} with no request nonce, on a database that keeps every decision with the nonce of its request"
            ));
        };
        let Some(role) = self.role else {
            return Err(format!(
                "journal line {line} records step '{step}' {status} by no login, on a database that stamps every decision with its login"
            ));
        };
        let Some(filed) = requests.iter().find(|r| r.step == step && r.nonce == nonce) else {
            return Err(format!(
                "journal line {line} records step '{step}' {status} for a request the journal never filed for it"
            ));
        };
        let matches = |d: &&Decided| {
            let decision: Value = serde_json::from_str(&d.decision).unwrap_or(Value::Null);
            let request: Value = d
                .request
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            d.login.as_deref().is_some_and(|l| names(Some(role), l))
                && decision["verdict"].as_str() == Some(status)
                && decision["nonce"]
                    .as_str()
                    .is_some_and(|n| same_nonce(nonce, n))
                && request["step"].as_str() == Some(step)
        };
        let found: Vec<usize> = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| matches(d))
            .map(|(i, _)| i)
            .collect();
        let free = found
            .iter()
            .find(|i| !credited.iter().any(|(c, _)| c == *i));
        let Some(&at) = free else {
            if let Some((_, earlier)) = credited.iter().find(|(c, _)| found.contains(c)) {
                return Err(format!(
                    "journal line {line} records step '{step}' {status} on the decision line {earlier} already stands on: one decision credits one approval"
                ));
            }
            return Err(format!(
                "journal line {line} records step '{step}' {status} by the login {}, but the database holds no such decision from that login for that request",
                quoted(role)
            ));
        };
        let d = &decisions[at];
        if d.login.as_deref() == Some(filed.by.as_str()) {
            return Err(format!(
                "journal line {line} records step '{step}' {status} by the login {}, which filed the request (line {}): four eyes needs another person's",
                quoted(role),
                filed.line
            ));
        }
        Ok(at)
    }
}

/// Whether the nonce a journal line gives is the decision's: the same, or the same with
/// parts masked (a secret's value that happened to appear in the random nonce is masked
/// in the journal, not in the decision): each `secret(…tail)` stands for at least four
/// characters ending in `tail`.
fn same_nonce(journalled: &str, decided: &str) -> bool {
    const MASK: &str = "secret(…";
    let Some(at) = journalled.find(MASK) else {
        return journalled == decided;
    };
    let Some(close) = journalled[at..].find(')') else {
        return false;
    };
    let (before, tail, after) = (
        &journalled[..at],
        &journalled[at + MASK.len()..at + close],
        &journalled[at + close + 1..],
    );
    let Some(rest) = decided.strip_prefix(before) else {
        return false;
    };
    // Every split of the rest: the masked part (at least four characters, ending in the
    // tail), then what follows it.
    rest.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(rest.len()))
        .any(|end| {
            let hidden = &rest[..end];
            hidden.chars().count() >= 4 && hidden.ends_with(tail) && same_nonce(after, &rest[end..])
        })
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

/// The audit rows that do not name the login stamped on them, and those without a stamp
/// after a stamped one. An entry that names no login is taken only for a run that started
/// before the stamp (`began_unstamped`): a process of the version before, still running
/// while the database was migrated, writes none.
pub fn audit(rows: &[Stamp], began_unstamped: &dyn Fn(&str) -> bool) -> Vec<Forged> {
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
        let named = fields["login"].as_str();
        if names(named, stamp) || (named.is_none() && began_unstamped(&run_id)) {
            continue;
        }
        problems.push(Forged {
            entry,
            reason: format!(
                "audit entry {entry} was written by the login {}, but names {}",
                quoted(stamp),
                named.map_or("no login".into(), quoted)
            ),
            run_id,
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

    fn requested(step: &str, nonce: &str) -> Stamp {
        let text = format!(
            r#"{{"type":"approval","step":"{step}","status":"requested","nonce":"{nonce}"}}"#
        );
        row(&text, Some("alice"))
    }

    fn decided(step: &str, status: &str, role: &str, nonce: &str) -> Stamp {
        let text = format!(
            r#"{{"type":"approval","step":"{step}","status":"{status}","approver_role":"{role}","nonce":"{nonce}"}}"#
        );
        row(&text, Some("alice"))
    }

    /// A decision row as the trigger copies it: the verdict under the request's nonce, the
    /// request as it stood, the login stamped.
    fn decision(verdict: &str, nonce: &str, step: &str, login: &str) -> Decided {
        Decided {
            decision: format!(r#"{{"nonce":"{nonce}","verdict":"{verdict}","by":"x"}}"#),
            request: Some(format!(r#"{{"step":"{step}","nonce":"{nonce}"}}"#)),
            login: Some(login.into()),
        }
    }

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
    fn a_start_line_names_the_login_stamped_on_it() {
        assert_eq!(
            journal(&[row(STARTED_A, Some("mallory"))], &[]),
            Err(r#"journal line 1 was written by the login "mallory", but its run_started names "alice""#.into())
        );
        let unnamed = r#"{"type":"run_resumed","actor":"alice"}"#;
        assert_eq!(
            journal(&[row(STARTED_A, Some("alice")), row(unnamed, Some("mallory"))], &[]),
            Err(r#"journal line 2 was written by the login "mallory", but its run_resumed names no login"#.into())
        );
    }

    /// A login that is also a secret's value is written as its mask: the mask of the
    /// stamped login names it; another mask does not.
    #[test]
    fn a_login_the_redactor_masked_names_only_its_own_login() {
        let masked = format!(
            r#"{{"type":"run_started","login":"{}"}}"#,
            runbook_secret::mask("alice_ops_team")
        );
        let rows = [
            row(&masked, Some("alice_ops_team")),
            row(STEP, Some("alice_ops_team")),
        ];
        assert_eq!(journal(&rows, &[]), Ok(()));
        let rows = [row(&masked, Some("mallory_ops_xx"))];
        assert!(journal(&rows, &[])
            .unwrap_err()
            .contains("but its run_started names"));
        let entry = format!(
            r#"{{"login":"{}"}}"#,
            runbook_secret::mask("alice_ops_team")
        );
        assert!(audit(&[row(&entry, Some("alice_ops_team"))], &|_| false).is_empty());
        assert_eq!(
            audit(&[row(&entry, Some("mallory_ops_xx"))], &|_| false).len(),
            1
        );
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

    /// Lines the requester appended by hand, a request and an approval under a masked nonce
    /// (`secret(…)` stands for any nonce of four characters or more), do not stand on the
    /// one decision bob gave for the real request: one decision credits one approval.
    /// Before, both lines verified, bob credited twice (cold review).
    #[test]
    fn one_decision_does_not_credit_two_approvals_through_a_masked_nonce() {
        let bob = [decision("approved", "0123456789abcdef", "a", "bob")];
        let honest = [
            row(STARTED_A, Some("alice")),
            requested("a", "0123456789abcdef"),
            decided("a", "approved", "bob", "0123456789abcdef"),
        ];
        assert_eq!(journal(&honest, &bob), Ok(()));
        let mut forged = honest.to_vec();
        forged.push(requested("a", "secret(…)"));
        forged.push(decided("a", "approved", "bob", "secret(…)"));
        assert_eq!(
            journal(&forged, &bob),
            Err("journal line 5 records step 'a' approved on the decision line 3 already stands on: one decision credits one approval".into())
        );
    }

    #[test]
    fn an_approval_is_the_approvers_own_decision_on_that_request() {
        let rows = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            decided("a", "approved", "bob", "n1"),
        ];
        assert_eq!(
            journal(&rows, &[decision("approved", "n1", "a", "bob")]),
            Ok(())
        );
        // Written by alice in bob's name: stamped alice.
        assert_eq!(
            journal(&rows, &[decision("approved", "n1", "a", "alice")]),
            Err(r#"journal line 3 records step 'a' approved by the login "bob", but the database holds no such decision from that login for that request"#.into())
        );
        // Bob denied it; or approved another request.
        assert!(journal(&rows, &[decision("denied", "n1", "a", "bob")]).is_err());
        assert!(journal(&rows, &[decision("approved", "n9", "a", "bob")]).is_err());
        // A timeout or a refused decision credits nobody.
        let timeout = row(
            r#"{"type":"approval","step":"a","status":"timeout","nonce":"n1"}"#,
            Some("alice"),
        );
        assert_eq!(
            journal(
                &[row(STARTED_A, Some("alice")), requested("a", "n1"), timeout],
                &[]
            ),
            Ok(())
        );
    }

    /// Bob's approval of one step does not approve another: not by its nonce (the request
    /// the database copied with the decision was for step a), not by a second line on it.
    #[test]
    fn a_decision_answers_one_request_of_one_step_once() {
        let bobs = [decision("approved", "n1", "a", "bob")];
        let relabelled = [
            row(STARTED_A, Some("alice")),
            requested("b", "n1"),
            decided("b", "approved", "bob", "n1"),
        ];
        assert!(journal(&relabelled, &bobs)
            .unwrap_err()
            .contains("holds no such decision from that login for that request"));
        let borrowed = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            decided("b", "approved", "bob", "n1"),
        ];
        assert_eq!(
            journal(&borrowed, &bobs),
            Err("journal line 3 records step 'b' approved for a request the journal never filed for it".into())
        );
        let twice = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            decided("a", "approved", "bob", "n1"),
            decided("a", "approved", "bob", "n1"),
        ];
        assert_eq!(
            journal(&twice, &bobs),
            Err(
                "journal line 4 records a second decision on the request line 3 recorded one for"
                    .into()
            )
        );
        let reused = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            requested("b", "n1"),
        ];
        assert_eq!(
            journal(&reused, &bobs),
            Err("journal line 3 files a request under the nonce the request on line 2 used".into())
        );
    }

    #[test]
    fn an_approval_by_the_requester_by_no_login_or_without_a_nonce_is_not_four_eyes() {
        let alices = [decision("approved", "n1", "a", "alice")];
        let own = [
            row(STARTED_A, Some("alice")),
            requested("a", "n1"),
            decided("a", "approved", "alice", "n1"),
        ];
        assert_eq!(
            journal(&own, &alices),
            Err(r#"journal line 3 records step 'a' approved by the login "alice", which filed the request (line 2): four eyes needs another person's"#.into())
        );
        let nobody = row(
            r#"{"type":"approval","step":"a","status":"denied","nonce":"n1"}"#,
            Some("alice"),
        );
        assert!(journal(
            &[row(STARTED_A, Some("alice")), requested("a", "n1"), nobody],
            &[]
        )
        .unwrap_err()
        .contains("records step 'a' denied by no login"));
        let bare = row(
            r#"{"type":"approval","step":"a","status":"approved","approver_role":"bob"}"#,
            Some("alice"),
        );
        assert!(journal(&[row(STARTED_A, Some("alice")), bare], &[])
            .unwrap_err()
            .contains("with no request nonce"));
        // Before the stamp, a line is not held to it.
        let old = row(
            r#"{"type":"approval","step":"a","status":"approved"}"#,
            None,
        );
        assert_eq!(journal(&[row(STARTED_A, None), old], &[]), Ok(()));
    }

    #[test]
    fn a_nonce_with_a_masked_part_is_the_decisions_nonce() {
        let nonce = "0f3a9c1d2e4b5a6978c0d1e2f3a4b5c6";
        assert!(same_nonce(nonce, nonce));
        assert!(!same_nonce(nonce, "0f3a9c1d2e4b5a6978c0d1e2f3a4b5c7"));
        // "9c1d2e" was a secret's value: masked to its last two characters.
        let masked = format!(
            "0f3a{}4b5a6978c0d1e2f3a4b5c6",
            runbook_secret::mask("9c1d2e")
        );
        assert!(same_nonce(&masked, nonce));
        assert!(!same_nonce(&masked, "0f3a9c1d2e4b5a6978c0d1e2f3a4b5c7"));
        assert!(!same_nonce(&masked, "ffff9c1d2e4b5a6978c0d1e2f3a4b5c6"));
        let two = format!(
            "{}2e4b5a6978c0d1e2{}",
            runbook_secret::mask("0f3a9c1d"),
            runbook_secret::mask("f3a4b5c6")
        );
        assert!(same_nonce(&two, nonce));
    }

    #[test]
    fn a_row_without_a_stamp_after_a_stamped_one_is_named() {
        let rows = [row(STARTED_A, Some("alice")), row(STEP, None)];
        assert_eq!(
            journal(&rows, &[]),
            Err("journal line 2 carries no login stamp, after lines stamped from journal line 1 on: it was written while the stamping trigger was switched off (only the tables' owner or a superuser can)".into())
        );
        let entries = [row(r#"{"login":"alice"}"#, Some("alice")), row("{}", None)];
        assert_eq!(audit(&entries, &|_| false)[0].entry, 2);
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
            row(r#"{"actor":"alice","run_id":"r1"}"#, Some("mallory")),
            row(r#"{"actor":"a","run_id":"old"}"#, Some("bob")),
        ];
        // Naming no login is taken only for a run that began before the stamp.
        let found = audit(&rows, &|run| run == "old");
        let reasons: Vec<&str> = found.iter().map(|f| f.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                r#"audit entry 2 was written by the login "mallory", but names "alice""#,
                r#"audit entry 3 was written by the login "mallory", but names no login"#,
            ]
        );
        assert_eq!(found[0].run_id, "r1");
    }
}
