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

/// Secrets by name, stored upper-cased (GitHub's names are case-insensitive).
#[derive(Default)]
pub(super) struct Secrets(pub(super) BTreeMap<String, RepoSecretValue>);

impl Secrets {
    /// Secret `name`.
    pub(super) fn get(&self, name: &str) -> Option<&RepoSecretValue> {
        self.0.get(&name.to_uppercase())
    }

    /// Stores secret `name`; whether it is new.
    pub(super) fn put(&mut self, name: &str, value: String) -> bool {
        match self.0.get_mut(&name.to_uppercase()) {
            Some(existing) => {
                existing.value = value;
                existing.updated_at = ts::seconds();
                false
            }
            None => {
                self.0
                    .insert(name.to_uppercase(), RepoSecretValue::new(value));
                true
            }
        }
    }

    /// Deletes secret `name`; whether there was one.
    pub(super) fn delete(&mut self, name: &str) -> bool {
        self.0.remove(&name.to_uppercase()).is_some()
    }

    /// `{name, created_at, updated_at}` of each, in name order.
    pub(super) fn listed(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(
                |(k, v)| json!({"name": k, "created_at": v.created_at, "updated_at": v.updated_at}),
            )
            .collect()
    }

    fn values(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.value)))
            .collect()
    }
}

pub(super) struct Repo {
    pub(super) name: String,
    pub(super) secrets: Secrets,
    /// Deployment environments by name, each with its own secrets.
    pub(super) environments: BTreeMap<String, Secrets>,
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

    /// Its value (what a workflow sees).
    pub(super) fn value(&self) -> &str {
        &self.value
    }

    /// Replaces its value.
    pub(super) fn set(&mut self, value: String) {
        self.value = value;
        self.updated_at = ts::seconds();
    }
}

impl Repo {
    /// Secret `name`.
    pub(super) fn secret(&self, name: &str) -> Option<&RepoSecretValue> {
        self.secrets.get(name)
    }

    /// Stores secret `name`; whether it is new.
    pub(super) fn put_secret(&mut self, name: &str, value: String) -> bool {
        self.secrets.put(name, value)
    }

    /// Deletes secret `name`; whether there was one.
    pub(super) fn delete_secret(&mut self, name: &str) -> bool {
        self.secrets.delete(name)
    }

    /// Environment `env` (GitHub's environment names are case-insensitive).
    pub(super) fn environment_mut(&mut self, env: &str) -> Option<&mut Secrets> {
        self.environments
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(env))
            .map(|(_, s)| s)
    }
}

/// An organisation secret and which repositories may use it.
pub(super) struct OrgSecret {
    pub(super) secret: RepoSecretValue,
    /// `all`, `private` or `selected`.
    pub(super) visibility: String,
    /// With `selected`: the repositories (`owner/name`) that may use it.
    pub(super) selected: Vec<String>,
}

impl OrgSecret {
    pub(super) fn new(value: String, visibility: String, selected: Vec<String>) -> Self {
        OrgSecret {
            secret: RepoSecretValue::new(value),
            visibility,
            selected,
        }
    }

    /// Whether repository `repo` (`owner/name`, private, as every sandbox repository is)
    /// may use it.
    pub(super) fn visible_to(&self, repo: &str) -> bool {
        match self.visibility.as_str() {
            "selected" => self.selected.iter().any(|r| r.eq_ignore_ascii_case(repo)),
            _ => true,
        }
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
    /// Organisation secrets by organisation (lower-cased), then name (upper-cased).
    pub(super) orgs: BTreeMap<String, BTreeMap<String, OrgSecret>>,
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
                secrets: Secrets::default(),
                environments: BTreeMap::new(),
            };
            for (k, v) in &spec.secrets {
                repo.put_secret(k, resolve(v, tokens_of)?);
            }
            for (env, secrets) in &spec.environments {
                let mut store = Secrets::default();
                for (k, v) in secrets {
                    store.put(k, resolve(v, tokens_of)?);
                }
                repo.environments.insert(env.clone(), store);
            }
            repos.push(repo);
        }
        let mut orgs: BTreeMap<String, BTreeMap<String, OrgSecret>> = BTreeMap::new();
        for spec in &s.org_secrets {
            if !matches!(spec.visibility.as_str(), "all" | "private" | "selected") {
                return Err(SandboxError::Scenario {
                    message: format!(
                        "github org secret '{}': visibility must be all, private or selected",
                        spec.name
                    ),
                });
            }
            orgs.entry(spec.org.to_lowercase()).or_default().insert(
                spec.name.to_uppercase(),
                OrgSecret {
                    secret: RepoSecretValue::new(resolve(&spec.value, tokens_of)?),
                    visibility: spec.visibility.clone(),
                    selected: spec.selected_repos.clone(),
                },
            );
        }
        Ok(GithubState {
            token: s
                .token
                .clone()
                .unwrap_or_else(|| format!("ghp_{}", uuid::Uuid::new_v4().simple())),
            key: crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng),
            repos,
            orgs,
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

    /// Whether `org` is an organisation of the sandbox: one that owns a repository or holds
    /// a secret.
    pub(super) fn knows_org(&self, org: &str) -> bool {
        self.orgs.contains_key(&org.to_lowercase())
            || self.repos.iter().any(|r| {
                r.name
                    .split_once('/')
                    .is_some_and(|(o, _)| o.eq_ignore_ascii_case(org))
            })
    }

    /// Repository `owner/name` by its id (its place in the scenario, from 1).
    pub(super) fn repo_by_id(&self, id: u64) -> Option<String> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.repos.get(i).map(|r| r.name.clone())
    }

    /// What a workflow run in repository `owner/name` (in environment `env`, if given)
    /// sees: each secret's value and where it came from. GitHub's precedence: an
    /// environment secret wins over a repository secret, which wins over an organisation
    /// secret of the same name. `None` without that repository (or environment).
    pub(super) fn workflow_view(
        &mut self,
        owner: &str,
        name: &str,
        env: Option<&str>,
    ) -> Option<Value> {
        let full = format!("{owner}/{name}");
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(org) = self.orgs.get(&owner.to_lowercase()) {
            for (k, o) in org.iter().filter(|(_, o)| o.visible_to(&full)) {
                seen.insert(
                    k.clone(),
                    json!({"value": o.secret.value(), "source": "organization"}),
                );
            }
        }
        let repo = self.repo_mut(owner, name)?;
        for (k, v) in &repo.secrets.0 {
            seen.insert(
                k.clone(),
                json!({"value": v.value(), "source": "repository"}),
            );
        }
        if let Some(env) = env {
            let secrets = repo.environment_mut(env)?;
            for (k, v) in &secrets.0 {
                seen.insert(
                    k.clone(),
                    json!({"value": v.value(), "source": "environment"}),
                );
            }
        }
        Some(json!({"secrets": seen}))
    }

    pub(super) fn to_json(&self) -> Value {
        let repos: Map<String, Value> = self
            .repos
            .iter()
            .map(|r| {
                let environments: Map<String, Value> = r
                    .environments
                    .iter()
                    .map(|(e, s)| (e.clone(), json!({"secrets": s.values()})))
                    .collect();
                (
                    r.name.clone(),
                    json!({"secrets": r.secrets.values(), "environments": environments}),
                )
            })
            .collect();
        let orgs: Map<String, Value> = self
            .orgs
            .iter()
            .map(|(org, secrets)| {
                let secrets: Map<String, Value> = secrets
                    .iter()
                    .map(|(k, o)| {
                        (
                            k.clone(),
                            json!({"value": o.secret.value(), "visibility": o.visibility}),
                        )
                    })
                    .collect();
                (org.clone(), json!({"secrets": secrets}))
            })
            .collect();
        json!({"repos": repos, "orgs": orgs, "rate_limit": {"used": self.window.used, "refused": self.window.refused}})
    }
}
