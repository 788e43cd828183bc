//! "Did you mean": the known name nearest to a mistyped one, by edit distance.

/// The candidate closest to `word`, if it is close enough to be a typo of it: at most a
/// third of the word's length in edits (at least one), ties broken by the first given.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let budget = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = strsim::levenshtein(word, c);
        if d <= budget && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_typo_finds_its_name_and_a_stranger_finds_none() {
        let names = [
            "postmark::server",
            "postmark::send_email",
            "heroku::restart",
        ];
        assert_eq!(closest("postmark::servr", names), Some("postmark::server"));
        assert_eq!(closest("heroku::restrat", names), Some("heroku::restart"));
        assert_eq!(closest("github::set_secret", names), None);
        assert_eq!(closest(":stpes", [":steps", ":step"]), Some(":steps"));
        assert_eq!(closest("x", ["y", "xy"]), Some("y"));
    }
}
