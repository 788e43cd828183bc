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
        masked.push_str(&mask_words(line));
        masked.push('\n');
    }
    masked
}

/// Run ids (`20261129T224243123Z-1a2b3c`), loopback ports and durations (`12 ms`, `0.3s`)
/// in one line.
fn mask_words(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if let Some(n) = run_id_len(rest) {
            out.push_str("[RUN]");
            rest = &rest[n..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("127.0.0.1:") {
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                out.push_str("127.0.0.1:PORT");
                rest = &after[digits..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    mask_durations(&out)
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
}
