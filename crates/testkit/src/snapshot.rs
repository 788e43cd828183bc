//! Exact expected output kept in `tests/snapshots/NAME.txt`, as just's tests compare stdout
//! and stderr: a diagnostic that changes shows up as a diff in review. Run the tests with
//! `UPDATE_SNAPSHOTS=1` to write what the binary prints now.

use std::path::Path;

/// Compares `actual` with the snapshot file, or writes it under `UPDATE_SNAPSHOTS=1`.
#[track_caller]
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = crate::root()
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir snapshots");
        std::fs::write(&path, actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with UPDATE_SNAPSHOTS=1 to create it; the output is:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "output differs from {} (UPDATE_SNAPSHOTS=1 rewrites it)\n{}",
            path.display(),
            diff(&expected, actual)
        );
    }
}

/// A line diff: `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("  {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ {y}\n"));
                }
            }
        }
    }
    out
}

/// Replaces what differs between runs and machines: the test dir, the checkout's path, run
/// ids, ports and durations.
pub(crate) fn mask(text: &str, dir: &Path) -> String {
    let mut out = text.to_string();
    out = out.replace(&*crate::root().to_string_lossy(), "[ROOT]");
    for d in [
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        dir.to_path_buf(),
    ] {
        out = out.replace(&*d.to_string_lossy(), "[DIR]");
    }
    let mut masked = String::with_capacity(out.len());
    for line in out.lines() {
        masked.push_str(&even_the_cut(&mask_words(line)));
        masked.push('\n');
    }
    masked
}

/// A line the binary cut to the terminal's width (`…` at the end) shows more or less after
/// `[ROOT]` as the checkout's path is shorter or longer; cut it shorter still, at a fixed
/// distance from `[ROOT]`, so the snapshot reads the same from any checkout.
fn even_the_cut(line: &str) -> String {
    const KEEP: usize = 60;
    let (Some(body), Some(at)) = (line.strip_suffix('…'), line.find("[ROOT]")) else {
        return line.to_string();
    };
    let start = at + "[ROOT]".len();
    match body[start..].char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &body[..start + cut]),
        None => line.to_string(),
    }
}

/// Run ids (`20261129T224243123Z-1a2b3c`), loopback ports, durations (`12 ms`, `0.3s`),
/// times and dates, UUIDs, fingerprints (`hmac:…`), hashes, a secret's last characters and
/// this machine's name in one line.
fn mask_words(line: &str) -> String {
    let host = hostname();
    let mut out = String::new();
    let mut rest = line;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let boundary = prev.is_none_or(|p| !p.is_ascii_alphanumeric());
        let found: Option<(&str, usize)> = if boundary {
            run_id_len(rest)
                .map(|n| ("[RUN]", n))
                .or_else(|| rfc3339_len(rest).map(|n| ("[TIME]", n)))
                .or_else(|| date_len(rest).map(|n| ("[DATE]", n)))
                .or_else(|| clock_len(rest).map(|n| ("[CLOCK]", n)))
                .or_else(|| uuid_len(rest).map(|n| ("[UUID]", n)))
                .or_else(|| {
                    rest.strip_prefix("hmac:")
                        .map(hex_len)
                        .filter(|n| *n >= 16)
                        .map(|n| ("hmac:[FP]", 5 + n))
                })
                .or_else(|| {
                    Some(hex_len(rest))
                        .filter(|n| *n == 64)
                        .map(|n| ("[HASH]", n))
                })
        } else {
            None
        };
        if let Some((placeholder, n)) = found {
            out.push_str(placeholder);
            prev = rest[..n].chars().last();
            rest = &rest[n..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("secret(…") {
            if let Some(end) = after.find(')').filter(|e| *e <= 8) {
                out.push_str("secret(…TAIL)");
                rest = &after[end + 1..];
                prev = Some(')');
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("127.0.0.1:") {
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                out.push_str("127.0.0.1:PORT");
                rest = &after[digits..];
                prev = Some('0');
                continue;
            }
        }
        if let Some((sep, n)) = host.as_deref().and_then(|h| host_len(rest, h)) {
            out.push_str(sep);
            out.push_str("[HOST]");
            rest = &rest[n..];
            prev = Some(']');
            continue;
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    mask_durations(&out)
}

/// `@HOST` or ` on HOST` (an actor's machine, a run's): the separator and the length.
fn host_len(s: &str, host: &str) -> Option<(&'static str, usize)> {
    ["@", " on "].into_iter().find_map(|sep| {
        let after = s.strip_prefix(sep)?.strip_prefix(host)?;
        (!after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-'))
            .then_some((sep, sep.len() + host.len()))
    })
}

/// This machine's name, as run records show it.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Whether `s` starts with the ASCII digits and separators of `shape` (`9` a digit).
fn shaped(s: &str, shape: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= shape.len()
        && shape.bytes().zip(b).all(|(want, got)| match want {
            b'9' => got.is_ascii_digit(),
            b'x' => got.is_ascii_hexdigit(),
            other => *got == other,
        })
}

/// `2026-12-02T13:49:40Z`, `…40.123Z`, `…40.1234567+00:00`.
fn rfc3339_len(s: &str) -> Option<usize> {
    if !shaped(s, "9999-99-99T99:99:99") {
        return None;
    }
    let mut n = 19;
    let b = s.as_bytes();
    if b.get(n) == Some(&b'.') {
        n += 1;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    if b.get(n) == Some(&b'Z') {
        Some(n + 1)
    } else if shaped(&s[n..], "+99:99") {
        Some(n + 6)
    } else {
        Some(n)
    }
}

fn date_len(s: &str) -> Option<usize> {
    (shaped(s, "9999-99-99") && !s[10..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        .then_some(10)
}

fn clock_len(s: &str) -> Option<usize> {
    (shaped(s, "99:99:99") && !s[8..].starts_with(|c: char| c.is_ascii_digit())).then_some(8)
}

fn uuid_len(s: &str) -> Option<usize> {
    shaped(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx").then_some(36)
}

/// Lower-case hex digits at the start of `s`.
fn hex_len(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count()
}

fn run_id_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    // 8 digits, T, 9 digits, Z, -, 6 hex
    if b.len() < 26 {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = digits(0..8)
        && b[8] == b'T'
        && digits(9..18)
        && b[18] == b'Z'
        && b[19] == b'-'
        && b[20..26].iter().all(u8::is_ascii_hexdigit);
    ok.then_some(26)
}

/// A number directly followed by a time unit (`12 ms`, `0.3s`) becomes `N`.
fn mask_durations(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_number =
            chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric());
        // An audit context's `duration_ms=47`.
        if starts_number && i >= 12 && chars[i - 12..i].iter().collect::<String>() == "duration_ms="
        {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push('N');
            continue;
        }
        if !starts_number {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
            j += 1;
        }
        let after: String = chars[j..].iter().take(4).collect();
        let unit = ["ms", " ms", "s"].iter().find(|u| {
            after.starts_with(**u)
                && !after[u.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        });
        if unit.is_some() {
            out.push('N');
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_run_ids_and_durations_but_not_other_numbers() {
        assert_eq!(
            mask_words(
                "Run 20261129T224243123Z-1a2b3c succeeded in 0.3s (12 ms), step 3/7 on http://127.0.0.1:40123/x"
            ),
            "Run [RUN] succeeded in Ns (N ms), step 3/7 on http://127.0.0.1:PORT/x"
        );
    }

    #[test]
    fn masks_times_ids_fingerprints_and_secret_tails() {
        assert_eq!(
            mask_words(
                "2026-12-02T13:49:40Z  13:49:41 due 2026-12-02 MessageID 0b8f1a2c-1d2e-4f3a-9b8c-7d6e5f4a3b2c value=hmac:bf2c153b2bf88c747cc1d3a9 secret(…2058) head 24996843ce5a34b49df7bc51d3545a27174d0f70e82820185c9f40f8cdb4cb26 ok"
            ),
            "[TIME]  [CLOCK] due [DATE] MessageID [UUID] value=hmac:[FP] secret(…TAIL) head [HASH] ok"
        );
        assert_eq!(
            mask_words("step 3/8 · 12:30 v1.2.3"),
            "step 3/8 · 12:30 v1.2.3"
        );
        assert_eq!(mask_words("duration_ms=318 x=4"), "duration_ms=N x=4");
    }

    /// CI's checkout path is longer than a developer's: the same cut line must read the same.
    #[test]
    fn a_line_cut_after_the_checkout_path_reads_the_same_from_any_checkout() {
        let tail = "runbooks/postmark.rhai:117:17: heroku::set_config failed for 1 of 2 target(s) (1 succeeded): raxx-api-staging";
        let width = 150;
        let cut = |root: &str| {
            let full = format!("error={root}/{tail}");
            let shown: String = full.chars().take(width).collect();
            even_the_cut(&format!("{shown}…").replace(root, "[ROOT]"))
        };
        assert_eq!(cut("/work/main"), cut("/check/work/main"));
        assert_eq!(
            cut("/work/main"),
            "error=[ROOT]/runbooks/postmark.rhai:117:17: heroku::set_config failed fo…"
        );
        assert_eq!(even_the_cut("no cut [ROOT]/x"), "no cut [ROOT]/x");
    }
}
