//! The journal under a hash chain: every line carries the hash of the one before it
//! (`prev_hash`) and its own (`hash`, over the line without it), as audit entries do. The
//! run's audit entries name the journal line they follow (`Link`), so a journal row edited,
//! removed, reordered or rewritten whole no longer matches the audit chain.

use crate::audit::entry_hash;
use crate::store::GENESIS;
use serde_json::Value;

pub use crate::audit::JournalLink as Link;

impl Link {
    /// Before the first line.
    pub fn start() -> Link {
        Link {
            lines: 0,
            head: GENESIS.to_string(),
        }
    }
}

/// A journal line (redacted JSON) chained after `prev`: the line as stored and its hash.
pub(crate) fn chained(line: &str, prev: &str) -> (String, String) {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => chained_fields(fields, prev),
        _ => (line.to_string(), prev.to_string()),
    }
}

/// As [`chained`], from the line's fields already parsed (`with_hash` writes the line once).
pub(crate) fn chained_fields(
    mut fields: serde_json::Map<String, Value>,
    prev: &str,
) -> (String, String) {
    fields.insert("prev_hash".into(), Value::String(prev.to_string()));
    crate::audit::with_hash(&fields)
}

/// What verifying a journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every chained line holds. `chained`: lines that carry a hash (journals written before
    /// the chain have none). `tip`: the last line and its hash.
    Intact { chained: u64, tip: Link },
    /// The first line (1-based, among non-empty lines) that breaks the chain, and why.
    Broken { line: u64, reason: String },
}

/// The hash of every non-empty line, in order (`None` for a line with none), and the
/// verdict. A torn last line (a crash mid-write, so without its newline) is not part of
/// the journal, as for `ledger::parse`.
pub fn verify(text: &str) -> (Vec<Option<String>>, Verdict) {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let torn = super::torn_tail(text) && text.lines().last().is_some_and(|l| !l.trim().is_empty());
    let mut hashes = Vec::with_capacity(lines.len());
    let mut prev = GENESIS.to_string();
    let mut chained = 0;
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        let broken = |reason: &str| Verdict::Broken {
            line: n,
            reason: reason.to_string(),
        };
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            if torn && i + 1 == lines.len() {
                break;
            }
            return (hashes, broken("not valid JSON (edited or truncated)"));
        };
        let Some(hash) = value.get("hash").and_then(Value::as_str) else {
            if chained > 0 {
                return (
                    hashes,
                    broken("it carries no hash, after lines that do (its chain was stripped)"),
                );
            }
            hashes.push(None);
            continue;
        };
        if entry_hash(&value) != hash {
            return (
                hashes,
                broken("its content does not match its hash (edited)"),
            );
        }
        if value.get("prev_hash").and_then(Value::as_str) != Some(prev.as_str()) {
            return (
                hashes,
                broken("it does not follow the line before it (a line was removed, inserted or reordered)"),
            );
        }
        prev = hash.to_string();
        hashes.push(Some(prev.clone()));
        chained += 1;
    }
    let tip = Link {
        lines: hashes.len() as u64,
        head: prev,
    };
    (hashes, Verdict::Intact { chained, tip })
}

/// Whether a journal agrees with the audit chain's links into it: each named line exists
/// and has the named hash. The first link that does not hold, as a reason.
pub fn check_links(hashes: &[Option<String>], links: &[Link]) -> Result<(), String> {
    for link in links {
        let at = usize::try_from(link.lines).unwrap_or(usize::MAX);
        match at.checked_sub(1).and_then(|i| hashes.get(i)) {
            _ if link.lines == 0 => {}
            None => {
                return Err(format!(
                "the audit log names journal line {} but the journal has {} (lines were removed)",
                link.lines,
                hashes.len()
            ))
            }
            Some(h) if h.as_deref() != Some(link.head.as_str()) => {
                return Err(format!(
                "journal line {} is not the one the audit log recorded (the journal was rewritten)",
                link.lines
            ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A run's journal that does not hold: edited, cut, reordered or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalProblem {
    pub run_id: String,
    pub reason: String,
    /// The SHA-256 of the journal's text, when there is one.
    pub sha256: Option<String>,
}

/// Checks every run's journal in `store` against the audit log's `entries`: its own chain,
/// and the links the entries hold into it. A journal the log links to that is gone is a
/// problem too.
pub fn verify_journals(
    store: &crate::store::Store,
    entries: &[crate::audit::AuditEntry],
) -> crate::error::Result<Vec<JournalProblem>> {
    let mut problems = Vec::new();
    let runs = store.runs()?;
    for run_id in &runs {
        // On a store that stamps who wrote each row, the rows with their stamps. One over
        // the size limit is that journal's problem (any login may append rows), not the
        // end of the check for every other journal.
        let stamped = match store.journal_stamped(run_id) {
            Ok(stamped) => stamped,
            Err(e @ crate::error::Error::TooLarge { .. }) => {
                problems.push(JournalProblem {
                    run_id: run_id.clone(),
                    reason: format!("it cannot be read: {e}"),
                    sha256: None,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let read = match &stamped {
            Some(rows) => Ok(Some(joined(rows))),
            None => store.journal(run_id),
        };
        // One journal that cannot be read is that journal's problem, not the check's end.
        let text = match read {
            Ok(text) => text.unwrap_or_default(),
            Err(e) if !store.appends_are_durable() => {
                problems.push(JournalProblem {
                    run_id: run_id.clone(),
                    reason: format!("it cannot be read: {e}"),
                    sha256: store
                        .journal_bytes(run_id)
                        .ok()
                        .flatten()
                        .map(|b| crate::text::sha256_hex(&b)),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let of_run: Vec<&crate::audit::AuditEntry> = entries
            .iter()
            .filter(|e| &e.event.run_id == run_id)
            .collect();
        let checked = match (check_journal(&text, &of_run), &stamped) {
            (Ok(()), Some(rows)) => check_stamps(store, run_id, rows)?,
            (checked, _) => checked,
        };
        if let Err(reason) = checked {
            problems.push(JournalProblem {
                run_id: run_id.clone(),
                reason,
                sha256: Some(crate::text::sha256_hex(text.as_bytes())),
            });
        }
    }
    let missing: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.event.journal.is_some() && !runs.contains(&e.event.run_id))
        .map(|e| e.event.run_id.as_str())
        .collect();
    problems.extend(missing.into_iter().map(|run_id| JournalProblem {
        run_id: run_id.to_string(),
        reason: "the audit log links to its journal, which is gone (deleted)".into(),
        sha256: None,
    }));
    Ok(problems)
}

/// A journal's text from its stamped rows, as `JournalStore::journal` gives it.
pub fn joined(rows: &[crate::store::Stamp]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.text);
        text.push('\n');
    }
    text
}

/// Whether a run's stamped rows were written by the logins they name, and its approvals
/// given by the logins it credits (`stamps::journal`); the decisions are read only for a
/// journal that records one. `Err`: they cannot be read (a role without the right to), a
/// problem of the check, not of the run.
pub fn check_stamps(
    store: &crate::store::Store,
    run_id: &str,
    rows: &[crate::store::Stamp],
) -> crate::error::Result<std::result::Result<(), String>> {
    let approves = rows
        .iter()
        .any(|r| r.text.contains("\"type\":\"approval\""));
    let decisions = match approves {
        true => store.decisions(run_id)?.unwrap_or_default(),
        false => Vec::new(),
    };
    Ok(super::stamps::journal(rows, &decisions))
}

/// Whether a run began before the database stamped its rows (its first journal row carries
/// no stamp): its process may be of the version before, whose audit entries name no login.
pub fn began_unstamped(store: &crate::store::Store, run_id: &str) -> bool {
    match store.journal_stamped(run_id) {
        Ok(rows) => rows
            .and_then(|rows| rows.first().map(|r| r.login.is_none()))
            .unwrap_or(false),
        // Not read (it is reported on its own): its entries are not called forged for it.
        Err(crate::error::Error::TooLarge { .. }) => true,
        Err(_) => false,
    }
}

/// Whether a run's journal holds: its chain, and every link its audit entries make into it.
pub fn check_journal(
    text: &str,
    entries: &[&crate::audit::AuditEntry],
) -> std::result::Result<(), String> {
    check_journal_at(text, entries).map_err(|(line, why)| match line {
        Some(n) => format!("journal line {n}: {why}"),
        None => why,
    })
}

/// As [`check_journal`], the line that does not hold apart from why, when one line is the
/// problem (a link past the journal's end is not one line).
pub fn check_journal_at(
    text: &str,
    entries: &[&crate::audit::AuditEntry],
) -> std::result::Result<(), (Option<u64>, String)> {
    let (hashes, verdict) = verify(text);
    if let Verdict::Broken { line, reason } = verdict {
        return Err((Some(line), reason));
    }
    let links: Vec<Link> = entries
        .iter()
        .filter_map(|e| e.event.journal.clone())
        .collect();
    check_links(&hashes, &links).map_err(|why| (None, why))?;
    // Each process's end names the last audit entry it had written (`audit_head`): the log
    // must still hold it. Without this, a log cut at its end (or emptied) verified: the
    // journals named nothing the log had lost (cold review of the file store).
    for (i, line) in text.lines().enumerate() {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if fields.get("type").and_then(Value::as_str) != Some("run_finished") {
            continue;
        }
        let Some(head) = fields.get("audit_head").and_then(Value::as_str) else {
            continue;
        };
        if !entries.iter().any(|e| e.hash == head) {
            return Err((
                Some(i as u64 + 1),
                format!("the run's end names audit entry {head}, which the audit log does not hold (the log was cut or rewritten)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as chaining wrote it until the text was spliced: parsed, `prev_hash`
    /// inserted, hashed without `hash`, `hash` inserted, written again.
    fn chained_as_before(line: &str, prev: &str) -> (String, String) {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
            return (line.to_string(), prev.to_string());
        };
        fields.insert("prev_hash".into(), Value::String(prev.to_string()));
        let mut value = Value::Object(fields);
        let hash = entry_hash(&value);
        if let Value::Object(f) = &mut value {
            f.insert("hash".into(), Value::String(hash.clone()));
        }
        (value.to_string(), hash)
    }

    /// Journals written before and after read the same: every line's bytes and hash.
    #[test]
    fn a_line_is_chained_to_the_same_bytes_as_before() {
        let lines = [
            "{}",
            r#"{"v":1,"run_id":"r","time":"2026-12-06T00:00:00Z","type":"step_started","step":"a"}"#,
            r#"{"s":"quote \" backslash \\ tab \t nul \u0000 é … 😀","n":-12.5e-7,"big":18446744073709551615,"neg":-9223372036854775808,"f":0.1}"#,
            r#"{"nested":{"a":[1,{"b":null}],"c":true},"empty":[],"o":{}}"#,
            r#"{"prev_hash":"old","x":1}"#,
            r#"{"hash":"mine","x":1}"#,
            r#"{"x":1,"hash":"mine","prev_hash":"old"}"#,
            "not json",
            "[1,2]",
        ];
        for prev in [GENESIS, "abc"] {
            for line in lines {
                assert_eq!(chained(line, prev), chained_as_before(line, prev), "{line}");
            }
        }
        // An audit entry is hashed the same way, without a `prev_hash` added.
        let empty = serde_json::Map::new();
        let (line, hash) = crate::audit::with_hash(&empty);
        assert_eq!(line, format!("{{\"hash\":\"{hash}\"}}"));
        assert_eq!(hash, entry_hash(&Value::Object(empty)));
    }

    fn journal(n: usize) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (0..n)
            .map(|i| {
                let (line, hash) = chained(&format!("{{\"type\":\"e\",\"i\":{i}}}"), &prev);
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn a_chained_journal_verifies_and_every_change_breaks_it() {
        let lines = journal(4);
        let (hashes, v) = verify(&lines.join("\n"));
        let Verdict::Intact { chained: 4, tip } = v else {
            panic!("{v:?}")
        };
        assert_eq!(tip.lines, 4);
        assert_eq!(hashes[3].as_deref(), Some(tip.head.as_str()));

        let edited = lines.clone().join("\n").replace("\"i\":2", "\"i\":9");
        assert_eq!(
            verify(&edited).1,
            Verdict::Broken {
                line: 3,
                reason: "its content does not match its hash (edited)".into()
            }
        );
        let removed = [&lines[0], &lines[2], &lines[3]]
            .map(String::as_str)
            .join("\n");
        assert!(matches!(
            verify(&removed).1,
            Verdict::Broken { line: 2, .. }
        ));
        let swapped = [&lines[0], &lines[2], &lines[1], &lines[3]]
            .map(String::as_str)
            .join("\n");
        assert!(matches!(
            verify(&swapped).1,
            Verdict::Broken { line: 2, .. }
        ));
        // Hashes stripped from the lines after the first.
        let stripped: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    return l.clone();
                }
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("hash");
                v.to_string()
            })
            .collect();
        assert!(matches!(
            verify(&stripped.join("\n")).1,
            Verdict::Broken { line: 2, .. }
        ));
    }

    #[test]
    fn links_catch_a_journal_rewritten_whole_or_cut_short() {
        let lines = journal(3);
        let (hashes, _) = verify(&lines.join("\n"));
        let link = Link {
            lines: 3,
            head: hashes[2].clone().unwrap(),
        };
        assert!(check_links(&hashes, std::slice::from_ref(&link)).is_ok());
        // Cut short: the linked line is gone.
        let (short, v) = verify(&lines[..2].join("\n"));
        assert!(matches!(v, Verdict::Intact { .. }));
        assert!(check_links(&short, std::slice::from_ref(&link))
            .unwrap_err()
            .contains("lines were removed"));
        // Rewritten whole, re-chained: the chain holds, the link does not.
        let mut prev = GENESIS.to_string();
        let rewritten: Vec<String> = lines
            .iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("hash");
                o.remove("prev_hash");
                let text = v.to_string().replace("\"i\":1", "\"i\":7");
                let (line, hash) = chained(&text, &prev);
                prev = hash;
                line
            })
            .collect();
        let (again, v) = verify(&rewritten.join("\n"));
        assert!(matches!(v, Verdict::Intact { chained: 3, .. }));
        assert!(check_links(&again, &[link])
            .unwrap_err()
            .contains("rewritten"));
    }

    #[test]
    fn a_journal_from_before_the_chain_reads_as_unchained_and_a_torn_tail_is_left_out() {
        let old = "{\"kind\":\"run_started\"}\n{\"kind\":\"step\"}\n";
        let (hashes, v) = verify(old);
        assert_eq!(hashes, vec![None, None]);
        assert!(matches!(v, Verdict::Intact { chained: 0, .. }));
        let mut lines = journal(2);
        lines.push("{\"type\":\"e\",\"i".into());
        assert!(matches!(
            verify(&lines.join("\n")).1,
            Verdict::Intact { chained: 2, .. }
        ));
        // Ended by its newline, the same line was written whole and then damaged: the
        // chain is broken there, as `parse` finds the journal damaged there.
        assert!(matches!(
            verify(&(lines.join("\n") + "\n")).1,
            Verdict::Broken { line: 3, .. }
        ));
    }
}
