//! Text echoed in messages, kept to a size a terminal can show.

/// At most `max` characters of `text`, with `…` when cut: identifiers and values echoed
/// in messages (a 3 MB "name" must not fill the terminal).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
