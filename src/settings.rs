//! Everything this process is configured with, read once at start: the environment and
//! `./runbook.toml` (its `[vendors]`, `[state]`, `[policy]` and `[identity]` tables, in one
//! parse). The
//! commands get the `Settings` value and pass down what the engine needs; nothing below
//! reads the environment or the file again. A `runbook.toml` that cannot be used is an
//! error only for the commands that need it (a broken `[vendors]` table does not stop
//! `runbook check`).

use crate::error::{Error, Result};
use runbook_core::runbook::Library;
use runbook_vendors::{VendorConfig, VendorFileConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `./runbook.toml`.
const FILE: &str = "runbook.toml";

/// The tables of `./runbook.toml` runbook reads.
#[derive(Debug, Default, serde::Deserialize)]
struct RunbookToml {
    #[serde(default)]
    vendors: Option<VendorFileConfig>,
    #[serde(default)]
    state: StateTable,
    #[serde(default)]
    policy: PolicyTable,
    #[serde(default)]
    identity: IdentityTable,
}

/// `[identity]`: how people prove who they are on the file store (SSH signatures).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityTable {
    ssh_key: Option<PathBuf>,
    allowed_signers: Option<PathBuf>,
}

/// `[state]`: where a team's shared state is.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateTable {
    url: Option<String>,
    lease_seconds: Option<u64>,
    wait_seconds: Option<u64>,
}

/// `[policy]`: the organisation's rules for every run.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTable {
    approve_irreversible: Option<String>,
}

/// Where shared state is, and how long a lock's lease lasts there.
pub struct StateSettings {
    pub url: Option<String>,
    pub lease: Duration,
    /// How long a run waits for the store to record a write before it stops.
    pub wait: Duration,
}

pub struct Settings {
    /// The process's environment, as it was at start (empty values dropped).
    env: BTreeMap<String, String>,
    /// `./runbook.toml`, parsed; absent is empty. Its problem, if it has one, waits for a
    /// command that needs the file.
    file: std::result::Result<RunbookToml, (String, String)>,
    /// Where runbooks are found by name.
    pub library: Library,
    /// The state directory.
    pub state_dir: PathBuf,
}

impl Settings {
    /// Reads the environment and `./runbook.toml`.
    pub fn load() -> Settings {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Settings::from_parts(env, read_file())
    }

    fn from_parts(
        env: BTreeMap<String, String>,
        file: std::result::Result<RunbookToml, (String, String)>,
    ) -> Settings {
        let library = Library::new(env.get("RUNBOOK_PATH").map(std::ffi::OsStr::new));
        let state_dir = runbook_core::state::dir(&|k| env.get(k).cloned());
        Settings {
            env,
            file,
            library,
            state_dir,
        }
    }

    /// An environment variable, as the process started with it (empty is unset).
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn file(&self) -> Result<&RunbookToml> {
        self.file
            .as_ref()
            .map_err(|(message, help)| Error::usage(message.clone(), help.clone()))
    }

    /// Vendor endpoints and credentials: the environment, then `[vendors]`.
    pub fn vendor_config(&self) -> Result<VendorConfig> {
        let file = self.file()?;
        Ok(VendorConfig::from_sources(|k| self.var(k), file.vendors.as_ref())?.checked()?)
    }

    /// `RUNBOOK_STATE_URL`, else `[state] url`; `RUNBOOK_LEASE_SECONDS`, else
    /// `[state] lease_seconds`, else 30 s.
    pub fn state(&self) -> Result<StateSettings> {
        let table = &self.file()?.state;
        let url = self
            .var("RUNBOOK_STATE_URL")
            .filter(|u| !u.trim().is_empty())
            .or_else(|| table.url.clone());
        let seconds =
            |var: &str, example: &str, table: Option<u64>, default: u64| match self.var(var) {
                Some(t) => t
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        Error::usage(
                            format!("{var} = '{t}' is not a whole number of seconds"),
                            format!("e.g. {var}={example}"),
                        )
                    }),
                None => Ok(table.unwrap_or(default)),
            };
        let lease = seconds(
            "RUNBOOK_LEASE_SECONDS",
            "30 (how long a crashed run's lock outlives it)",
            table.lease_seconds,
            30,
        )?;
        let wait = seconds(
            "RUNBOOK_STATE_WAIT_SECONDS",
            "60 (how long a run waits for the state store to record a write)",
            table.wait_seconds,
            runbook_core::store::DEFAULT_WAIT.as_secs(),
        )?;
        Ok(StateSettings {
            url,
            lease: Duration::from_secs(lease),
            wait: Duration::from_secs(wait),
        })
    }

    /// The organisation's approval policy, `[policy] approve_irreversible = "30m"`: every
    /// irreversible step waits for another actor's approval that long.
    pub fn approval_policy(&self) -> Result<Option<Duration>> {
        match &self.file()?.policy.approve_irreversible {
            None => Ok(None),
            Some(t) => runbook_core::interrupt::parse_duration(t)
                .filter(|d| !d.is_zero())
                .map(Some)
                .ok_or_else(|| {
                    Error::usage(
                        format!("runbook.toml [policy]: approve_irreversible = '{t}' is not a duration"),
                        "e.g. [policy] approve_irreversible = \"30m\" (every irreversible step needs another actor's approval)",
                    )
                }),
        }
    }

    /// This person's SSH signing key (`--ssh-key`, `RUNBOOK_SSH_KEY`, `[identity] ssh_key`)
    /// and the team's allowed signers (`RUNBOOK_ALLOWED_SIGNERS`, `[identity]
    /// allowed_signers`); `~/` is the home directory.
    pub fn keys(
        &self,
        flag: Option<&std::path::Path>,
    ) -> Result<runbook_core::approval::ssh::Keys> {
        let table = &self.file()?.identity;
        let home = |p: PathBuf| match p.to_str().and_then(|s| s.strip_prefix("~/")) {
            Some(rest) => self
                .var("HOME")
                .map(|h| PathBuf::from(h).join(rest))
                .unwrap_or(p),
            None => p,
        };
        Ok(runbook_core::approval::ssh::Keys {
            signing_key: flag
                .map(PathBuf::from)
                .or_else(|| self.var("RUNBOOK_SSH_KEY").map(PathBuf::from))
                .or_else(|| table.ssh_key.clone())
                .map(home),
            allowed_signers: self
                .var("RUNBOOK_ALLOWED_SIGNERS")
                .map(PathBuf::from)
                .or_else(|| table.allowed_signers.clone())
                .map(home),
        })
    }

    /// `RUNBOOK_AUDIT_WEBHOOK`: where every audit entry is also sent.
    pub fn audit_webhook(&self) -> Option<String> {
        self.var("RUNBOOK_AUDIT_WEBHOOK")
            .filter(|u| !u.trim().is_empty())
    }

    /// `RUNBOOK_SANDBOX_DASHBOARD`: a separate `runbook sandbox`'s Postmark, whose control
    /// routes do the dashboard steps of an unattended rehearsal.
    pub fn sandbox_dashboard(&self) -> Option<String> {
        self.var("RUNBOOK_SANDBOX_DASHBOARD")
            .filter(|u| !u.trim().is_empty())
    }

    /// Who runs this: `--actor`, else `RUNBOOK_ACTOR`, git's `user.email`, `user@host`;
    /// normalised (NFKC), and refused when too long or holding hidden characters.
    pub fn actor(&self, flag: Option<&str>) -> Result<String> {
        Self::actor_found(self.actor_lookup(flag))
    }

    /// `actor`, started now and finished by `actor_found`: git is asked on a thread.
    pub fn actor_lookup(&self, flag: Option<&str>) -> runbook_core::run::ActorLookup {
        runbook_core::run::actor_lookup(flag, &|k| self.var(k))
    }

    pub fn actor_found(lookup: runbook_core::run::ActorLookup) -> Result<String> {
        runbook_core::identity::actor(&lookup.get()).map_err(|why| {
            Error::usage(
                why,
                "pass --actor NAME (or set RUNBOOK_ACTOR) with a plain name or email address",
            )
        })
    }
}

/// `./runbook.toml`, parsed in one pass (so a wrong type anywhere has a position); absent
/// is empty. A problem is the message and the help, said without the value (a line of
/// this file is usually a credential).
fn read_file() -> std::result::Result<RunbookToml, (String, String)> {
    let help = "the file's tables are [vendors] (the environment variable names in lower case, e.g. heroku_api_key), [state] (url, lease_seconds, wait_seconds), [policy] (approve_irreversible) and [identity] (ssh_key, allowed_signers)";
    if let Ok(meta) = std::fs::metadata(FILE) {
        let limit = runbook_core::state::MAX_INPUT_BYTES;
        if !meta.is_file() || meta.len() > limit {
            return Err((
                format!(
                    "./{FILE} is not a regular file of at most {limit} bytes ({} bytes)",
                    meta.len()
                ),
                "runbook.toml holds a few tables; check that it is the file you meant".into(),
            ));
        }
    }
    let text = match std::fs::read_to_string(FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RunbookToml::default()),
        // Unreadable is not absent: a team's [state] url may be in it.
        Err(e) => {
            return Err((
                format!("cannot read ./{FILE}: {e}"),
                "fix its permissions (it may name the team's shared state)".into(),
            ))
        }
    };
    toml::from_str(&text).map_err(|e| {
        (
            format!(
                "./{FILE}: {}",
                runbook_vendors::config::describe_toml_error(&text, &e)
            ),
            help.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)], file: &str) -> Settings {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let parsed = toml::from_str(file).map_err(|e| (e.to_string(), String::new()));
        Settings::from_parts(env, parsed)
    }

    #[test]
    fn the_environment_wins_over_the_file_and_defaults_fill_the_rest() {
        let s = settings(
            &[("RUNBOOK_STATE_URL", "postgres://env/db"), ("RUNBOOK_STATE_DIR", "/st")],
            "[state]\nurl = \"postgres://file/db\"\nlease_seconds = 12\n[policy]\napprove_irreversible = \"30m\"\n",
        );
        let state = s.state().unwrap();
        assert_eq!(state.url.as_deref(), Some("postgres://env/db"));
        assert_eq!(state.lease, Duration::from_secs(12));
        assert_eq!(s.state_dir, PathBuf::from("/st"));
        assert_eq!(
            s.approval_policy().unwrap(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(s.actor(Some("alice")).unwrap(), "alice");
    }

    #[test]
    fn a_broken_file_stops_only_what_needs_it() {
        let s = settings(&[("HOME", "/h")], "[state]\nurl = 3\n");
        assert!(s.state().is_err());
        assert!(s.vendor_config().is_err());
        assert!(s.approval_policy().is_err());
        // What does not come from the file still works.
        assert_eq!(s.state_dir, PathBuf::from("/h/.local/state/runbook"));
        assert_eq!(s.actor(Some("bob")).unwrap(), "bob");
    }
}
