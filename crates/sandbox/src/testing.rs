//! Helpers for tests against a sandbox, this crate's and those of the crates that test
//! against one (the `test-api` feature): a plain client, and a JSON object's keys sorted.

use serde_json::Value;

/// A plain client for requests the typed clients would not make: it follows no redirect, so
/// a test sees the simulator's own answer.
pub fn client() -> reqwest::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Sorted owned strings, for comparing with `keys`.
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
