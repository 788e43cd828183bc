//! Text echoed in messages, kept to a size a terminal can show; text hashed for comparison.

/// At most `max` characters of `text`, with `…` when cut: identifiers and values echoed
/// in messages (a 3 MB "name" must not fill the terminal).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// SHA-256 of `bytes` in lower-case hex: the hash runbook hashes, journals and signed
/// texts are compared by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
