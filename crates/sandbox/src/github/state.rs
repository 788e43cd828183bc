//! The GitHub simulator's data: repositories with their Actions secrets, stored decrypted.

use crate::scenario::{resolve, GithubScenario};
use crate::world::TokensOf;
use crate::{ts, SandboxError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(super) struct RepoSecretValue {
    value: String,
    pub(super) created_at: String,
    pub(super) updated_at: String,
}

pub(super) struct Repo {
    name: String,
    pub(super) secrets: BTreeMap<String, RepoSecretValue>,
}

impl RepoSecretValue {
    /// A secret created now.
    fn new(value: String) -> Self {
        let now = ts::seconds();
        RepoSecretValue {
            value,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

/// GitHub's secret names are case-insensitive: they are stored upper-cased.
impl Repo {
    /// Secret `name`.
    pub(super) fn secret(&self, name: &str) -> Option<&RepoSecretValue> {
        self.secrets.get(&name.to_uppercase())
    }

    /// Stores secret `name`; whether it is new.
    pub(super) fn put_secret(&mut self, name: &str, value: String) -> bool {
        match self.secrets.get_mut(&name.to_uppercase()) {
            Some(existing) => {
                existing.value = value;
                existing.updated_at = ts::seconds();
                false
            }
            None => {
                self.secrets
                    .insert(name.to_uppercase(), RepoSecretValue::new(value));
                true
            }
        }
    }

    /// Deletes secret `name`; whether there was one.
    pub(super) fn delete_secret(&mut self, name: &str) -> bool {
        self.secrets.remove(&name.to_uppercase()).is_some()
    }
}

/// GitHub's primary rate limit: `limit` requests in a fixed hour that starts with the
/// window's first request; `x-ratelimit-reset` is its end, in Unix seconds.
pub(super) struct Window {
    pub(super) limit: u32,
    pub(super) used: u32,
    /// When the current window ends (0: no window yet).
    pub(super) reset: u64,
    /// Requests refused because the window was spent.
    pub(super) refused: u64,
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Window {
    fn new(limit: u32) -> Window {
        Window {
            limit,
            used: 0,
            reset: 0,
            refused: 0,
        }
    }

    /// Starts a new window when the last one ended.
    fn roll(&mut self) {
        let now = unix_now();
        if now >= self.reset {
            self.used = 0;
            self.reset = now + 3600;
        }
    }

    /// Counts one request: whether the window still had room.
    pub(super) fn take(&mut self) -> bool {
        self.roll();
        if self.used >= self.limit {
            self.refused += 1;
            return false;
        }
        self.used += 1;
        true
    }

    /// Requests left in this window.
    pub(super) fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }

    /// Ends the window now, as if its hour had passed (tests' time control).
    #[cfg(test)]
    pub(super) fn expire(&mut self) {
        self.reset = unix_now();
    }
}

pub(crate) struct GithubState {
    /// The token it accepts.
    pub(crate) token: String,
    /// The key pair whose public half encrypts secrets (every repository shares it).
    pub(super) key: crypto_box::SecretKey,
    repos: Vec<Repo>,
    pub(super) window: Window,
    /// The status of a spent primary limit (403 or 429).
    pub(super) limit_status: u16,
    pub(super) secondary: Option<crate::scenario::SecondaryLimitSpec>,
    /// The largest page a list answers (the scenario's `page_size`).
    pub(super) page_size: Option<u32>,
    /// When recent content-creating requests arrived (for the secondary limit).
    recent_writes: std::collections::VecDeque<std::time::Instant>,
}

impl GithubState {
    pub(super) fn from_scenario(
        s: &GithubScenario,
        tokens_of: TokensOf<'_>,
    ) -> Result<Self, SandboxError> {
        let mut repos = Vec::new();
        for spec in &s.repos {
            if spec.name.split('/').count() != 2 {
                return Err(SandboxError::Scenario {
                    message: format!("github repo '{}' is not owner/name", spec.name),
                });
            }
            let mut repo = Repo {
                name: spec.name.clone(),
                secrets: BTreeMap::new(),
            };
            for (k, v) in &spec.secrets {
                repo.put_secret(k, resolve(v, tokens_of)?);
            }
            repos.push(repo);
        }
        Ok(GithubState {
            token: s
                .token
                .clone()
                .unwrap_or_else(|| format!("ghp_{}", uuid::Uuid::new_v4().simple())),
            key: crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng),
            repos,
            window: Window::new(s.rate_limit),
            limit_status: match s.rate_limit_status {
                403 | 429 => s.rate_limit_status,
                other => {
                    return Err(SandboxError::Scenario {
                        message: format!(
                            "github rate_limit_status must be 403 or 429, not {other}"
                        ),
                    })
                }
            },
            secondary: s.secondary_limit.clone(),
            page_size: s.page_size,
            recent_writes: std::collections::VecDeque::new(),
        })
    }

    /// Counts a content-creating request against the secondary limit: `Err(seconds)` to
    /// wait when it is refused.
    pub(super) fn take_write(&mut self) -> Result<(), u64> {
        let Some(limit) = &self.secondary else {
            return Ok(());
        };
        let window = std::time::Duration::from_secs(limit.window_secs.max(1));
        let now = std::time::Instant::now();
        while self
            .recent_writes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.recent_writes.pop_front();
        }
        if self.recent_writes.len() >= limit.writes as usize {
            let oldest = self.recent_writes.front().copied().unwrap_or(now);
            let left = window.saturating_sub(now.duration_since(oldest));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.recent_writes.push_back(now);
        Ok(())
    }

    pub(super) fn repo_mut(&mut self, owner: &str, name: &str) -> Option<&mut Repo> {
        let full = format!("{owner}/{name}");
        self.repos
            .iter_mut()
            .find(|r| r.name.eq_ignore_ascii_case(&full))
    }

    /// Every repository's `owner/name`, in scenario order.
    pub(super) fn repo_names(&self) -> Vec<String> {
        self.repos.iter().map(|r| r.name.clone()).collect()
    }

    pub(super) fn to_json(&self) -> Value {
        let repos: Map<String, Value> = self
            .repos
            .iter()
            .map(|r| {
                let secrets: Map<String, Value> = r
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v.value)))
                    .collect();
                (r.name.clone(), json!({"secrets": secrets}))
            })
            .collect();
        json!({"repos": repos, "rate_limit": {"used": self.window.used, "refused": self.window.refused}})
    }
}
