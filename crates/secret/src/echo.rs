//! Parser messages without the values they quote: serde's "invalid type: string \"…\"",
//! rhai's "Error parsing integer number '…'". A value that failed to parse can be a secret
//! in the wrong place; the message names the field and the expected type, never the value.

/// `message` with every value it quotes replaced by what kind of value it was.
pub fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(at) = message.find(lead) {
            let start = at + lead.len();
            let rest = &message[start..];
            let end = rest.find(", expected ").unwrap_or(rest.len());
            let kind = kind_of(&rest[..end]);
            return format!("{}{kind}{}", &message[..start], &rest[end..]);
        }
    }
    if let Some(at) = message.find("unknown variant `") {
        let start = at + "unknown variant ".len();
        let rest = &message[start..];
        // The variant is quoted with backticks: `name`.
        let end = rest[1..].find('`').map(|i| i + 2).unwrap_or(rest.len());
        return format!("{}(not shown){}", &message[..start], &rest[end..]);
    }
    // Anything else in single or double quotes (rhai's parse errors quote the text).
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['\'', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('\'');
        let Some(close) = rest[open + 1..].find(quote) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str("(a value, not shown)");
        rest = &rest[open + 1 + close + 1..];
    }
    out.push_str(rest);
    out
}

/// serde's description of an unexpected value, without the value: `string "x"` → `a string`.
fn kind_of(unexpected: &str) -> &'static str {
    let word = unexpected.split_whitespace().next().unwrap_or("");
    match word {
        "string" => "a string",
        "integer" => "an integer",
        "floating" => "a number",
        "boolean" => "a boolean",
        "character" | "char" => "a character",
        "map" => "a map",
        "sequence" => "a list",
        "unit" | "null" => "nothing",
        _ => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_rhai_messages_keep_the_field_and_drop_the_value() {
        assert_eq!(
            without_values("invalid type: string \"pm-secret\", expected u32 at line 2 column 9"),
            "invalid type: a string, expected u32 at line 2 column 9"
        );
        assert_eq!(
            without_values("invalid value: integer `-5`, expected u64"),
            "invalid value: an integer, expected u64"
        );
        assert_eq!(
            without_values("unknown variant `s3cret`, expected `a` or `b`"),
            "unknown variant (not shown), expected `a` or `b`"
        );
        assert_eq!(
            without_values("Error parsing integer number 'tok-123': invalid digit found in string"),
            "Error parsing integer number (a value, not shown): invalid digit found in string"
        );
        assert_eq!(
            without_values("missing field `name`"),
            "missing field `name`"
        );
    }
}
