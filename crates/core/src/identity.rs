//! Who acts: an actor's name as given (`--actor`, `RUNBOOK_ACTOR`, git's email), checked and
//! normalised, and the form two names are compared in, so that look-alikes (a Cyrillic `а`
//! for a Latin `a`, a full-width letter, a zero-width space) are one person to four eyes.

use unicode_normalization::UnicodeNormalization;

/// The longest actor name taken, in characters.
pub const MAX_ACTOR_CHARS: usize = 128;

/// An actor name, NFKC-normalised and trimmed; refused when empty, too long, or holding
/// control or direction-changing characters (a name must read as it is stored).
pub fn actor(name: &str) -> Result<String, String> {
    let normal: String = name.nfkc().collect::<String>().trim().to_string();
    if normal.is_empty() {
        return Err("an actor name is empty".into());
    }
    let chars = normal.chars().count();
    if chars > MAX_ACTOR_CHARS {
        return Err(format!(
            "an actor name is at most {MAX_ACTOR_CHARS} characters; this one has {chars} ({})",
            crate::text::truncate(&normal, 24)
        ));
    }
    if let Some(c) = normal.chars().find(|c| hidden(*c)) {
        return Err(format!(
            "an actor name may not hold the control or formatting character U+{:04X}",
            c as u32
        ));
    }
    Ok(normal)
}

/// Characters that change how a name reads without showing: controls, bidirectional
/// overrides and isolates, zero-width joiners and spaces.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The form two actor names are compared in: NFKC, lower case, invisible characters
/// dropped, and letters that look like Latin ones (Cyrillic, Greek, a few digits) folded to
/// them. Not all of Unicode's confusables; the ones a look-alike name is built from.
pub fn skeleton(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| !hidden(*c) && !c.is_whitespace())
        .map(fold)
        .collect()
}

fn fold(c: char) -> char {
    match c {
        // Cyrillic
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ӏ' => 'l',
        // Greek
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        // Digits and marks read as letters
        '0' => 'o',
        '1' | '|' | 'ı' => 'l',
        other => other,
    }
}

/// Whether two actor names are the same person to four eyes.
pub fn same(a: &str, b: &str) -> bool {
    skeleton(a) == skeleton(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_are_one_actor() {
        assert!(same("alice", "аlice")); // Cyrillic а
        assert!(same("alice@example.com", "ALICE@EXAMPLE.COM"));
        assert!(same("alice", "ａｌｉｃｅ")); // full width
        assert!(same("alice", "al\u{200B}ice"));
        assert!(same("bob", "b0b"));
        assert!(!same("alice", "bob"));
        assert!(!same("alice", "alicia"));
    }

    #[test]
    fn a_name_is_normalised_or_refused_with_the_reason() {
        assert_eq!(actor("  ａｌｉｃｅ ").unwrap(), "alice");
        let long = "a".repeat(100_000);
        let e = actor(&long).unwrap_err();
        assert!(
            e.contains("at most 128 characters; this one has 100000"),
            "{e}"
        );
        assert!(e.len() < 200);
        assert!(actor("al\u{202E}ice").unwrap_err().contains("U+202E"));
        assert!(actor("a\nb").unwrap_err().contains("U+000A"));
        assert!(actor("   ").is_err());
    }
}
