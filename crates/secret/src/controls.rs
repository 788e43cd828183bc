//! Terminal control characters from untrusted text (a title, a print, a vendor's body, a
//! journal's actor) shown as visible symbols instead of obeyed: an escape sequence could
//! move the cursor over a warning, retitle the window or write the clipboard.

use std::borrow::Cow;

/// A question shown on one line: its line breaks as visible symbols (␊, ␍). A question is
/// answered on the line it ends on, so a vendor's value inside one (a message id, a dyno
/// name) that held a line break could draw a different question above the `[y/N]` the
/// answer goes to.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace('\n', "\u{240a}").replace('\r', "\u{240d}"))
}

/// Replaces control characters (all but newline and tab; a carriage return only when it
/// ends a line) with visible symbols, and invisible characters that change how text reads
/// (bidirectional overrides and isolates, the "Trojan Source" trick; zero-width and
/// invisible format characters) with their code point, `<U+202E>`. With `keep_sgr`, colour sequences (`ESC [ … m`, the
/// only ones runbook itself writes) are kept; every other escape sequence is neutralised.
pub fn neutralise(text: &str, keep_sgr: bool) -> Cow<'_, str> {
    let needs = text
        .chars()
        .any(|c| (is_control(c) && c != '\n' && c != '\t') || is_invisible(c));
    if !needs {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let n = c.len_utf8();
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if rest[n..].starts_with('\n') => out.push(c),
            '\u{1b}' if keep_sgr => match sgr_len(rest) {
                Some(len) => {
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                    continue;
                }
                None => out.push('\u{241b}'),
            },
            c if is_control(c) => out.push(picture(c)),
            c if is_invisible(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
        rest = &rest[n..];
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    c.is_control()
}

/// Characters a terminal does not show that reorder or hide text: bidirectional marks,
/// embeddings, overrides and isolates; zero-width spaces and joiners; invisible operators;
/// the byte-order mark; the Mongolian vowel separator; soft hyphen; tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x061C | 0x00AD | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0xFEFF
        | 0xE0000..=0xE007F)
}

/// Serialized JSON with every invisible character (see [`is_invisible`]) and every control
/// character a serializer leaves raw (DEL, the C1 controls such as CSI) written as its
/// `\uXXXX` escape: the same data for a parser, nothing hidden or obeyed for a person
/// reading it. (Such characters can only stand inside JSON strings, where the escape is
/// valid; newlines and tabs between tokens are the layout's own.)
pub fn json_visible(json: &str) -> Cow<'_, str> {
    let hidden = |c: char| is_invisible(c) || (c.is_control() && !matches!(c, '\n' | '\t' | '\r'));
    if !json.chars().any(hidden) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if hidden(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The length of a colour sequence at the start of `text`: ESC `[` digits/`;` `m`.
fn sgr_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\u{1b}[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    let shown = body[..params].split(';').all(|p| {
        // Reset, bold, dim, italic, underline and their ends, and the foreground colours
        // but black and white: what runbook and miette's theme write, none of which hides
        // text on a dark or a light terminal. Conceal, black, white, backgrounds, reverse
        // and 256 or RGB colours could make the warnings after a hostile title unreadable.
        matches!(
            p,
            "" | "0" | "1" | "2" | "3" | "4" | "22" | "23" | "24" | "39"
        ) || p
            .parse::<u8>()
            .is_ok_and(|n| (31..=36).contains(&n) || (91..=96).contains(&n))
    });
    (shown && params <= 32 && body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

/// C0 controls as their Unicode control pictures (␛, ␇, ␍), DEL as ␡, C1 as �.
fn picture(c: char) -> char {
    match c as u32 {
        n @ 0..=0x1f => char::from_u32(0x2400 + n).unwrap_or('\u{fffd}'),
        0x7f => '\u{2421}',
        _ => '\u{fffd}',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let hostile = "title\u{1b}]0;pwned\u{7}\u{1b}[2J\rover\u{9b}31m";
        let out = neutralise(hostile, false);
        assert!(!out.contains('\u{1b}') && !out.contains('\r') && !out.contains('\u{9b}'));
        assert_eq!(out, "title␛]0;pwned␇␛[2J␍over\u{fffd}31m");
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_are_shown_by_code_point() {
        let trojan = "access = \u{202E}nimda\u{2066} // \u{200B}ok\u{FEFF}";
        assert_eq!(
            neutralise(trojan, true),
            "access = <U+202E>nimda<U+2066> // <U+200B>ok<U+FEFF>"
        );
        assert!(matches!(
            neutralise("café ünïcode ✓", false),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_keeps_its_data_and_shows_what_is_invisible() {
        let json = "{\n  \"t\": \"a\u{202E}b\u{E0041}\u{9b}\u{7f}\"\n}";
        assert_eq!(
            json_visible(json),
            "{\n  \"t\": \"a\\u202eb\\udb40\\udc41\\u009b\\u007f\"\n}"
        );
    }

    #[test]
    fn colour_is_kept_only_when_asked_and_lines_stay_lines() {
        assert_eq!(
            neutralise("\u{1b}[1mbold\u{1b}[0m\r\n", true),
            "\u{1b}[1mbold\u{1b}[0m\r\n"
        );
        assert_eq!(neutralise("\u{1b}[1mbold", false), "␛[1mbold");
        assert_eq!(neutralise("\u{1b}[2Jx", true), "␛[2Jx");
        // Colour that could hide what follows it is shown, not obeyed: a question ending in
        // conceal (`ESC[8m`) hid every warning after it on a colour terminal.
        for hiding in [
            "\u{1b}[97m",
            "\u{1b}[37m",
            "\u{1b}[8m",
            "\u{1b}[30;40m",
            "\u{1b}[7m",
            "\u{1b}[38;5;0m",
            "\u{1b}[1;48;2;0;0;0m",
        ] {
            let text = format!("Proceed?{hiding} warning");
            let out = neutralise(&text, true);
            assert!(!out.contains('\u{1b}'), "{hiding:?}: {out}");
        }
        // What runbook and miette's theme write is kept.
        for kept in [
            "\u{1b}[0m",
            "\u{1b}[m",
            "\u{1b}[1m",
            "\u{1b}[2m",
            "\u{1b}[31;1m",
            "\u{1b}[33m",
            "\u{1b}[4;36m",
            "\u{1b}[35;1m",
            "\u{1b}[32m",
            "\u{1b}[39m",
        ] {
            assert_eq!(neutralise(&format!("a{kept}b"), true), format!("a{kept}b"));
        }
        assert!(matches!(
            neutralise("plain\ttext\n", true),
            Cow::Borrowed(_)
        ));
    }
}
