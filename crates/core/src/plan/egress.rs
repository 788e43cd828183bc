//! The hosts a runbook may reach with `http::`, declared in `runbook(#{ egress: [...] })`
//! (as Deno asks for `--allow-net`). An entry is a host (`api.sendgrid.com`), a wildcard
//! for subdomains (`*.example.com`), either with an optional port, or `param:NAME`: the host
//! of the URL the operator gives in that param (a downstream app whose address varies).
//! The vendor modules (postmark::, infisical::, heroku::, github::) reach their configured
//! endpoints and need no entry; loopback is always reachable (the sandbox lives there).

/// One declared entry, checked when the runbook loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Host(String),
    Param(String),
}

impl serde::Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Host(h) => s.serialize_str(h),
            Entry::Param(p) => s.serialize_str(&format!("param:{p}")),
        }
    }
}

/// `egress: [...]` (or one entry) as parsed entries; a bad one is a serde error naming it.
pub(crate) fn entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Entry>, D::Error> {
    super::spec::one_or_many(d)?
        .iter()
        .map(|e| Entry::parse(e))
        .collect::<Result<_, _>>()
        .map_err(|why| {
            serde::de::Error::custom(format!(
                "{why} (egress lists the hosts http:: may reach, e.g. egress: [\"api.sendgrid.com\", \"param:app_url\"])"
            ))
        })
}

impl Entry {
    pub fn parse(text: &str) -> Result<Entry, String> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix("param:") {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Ok(Entry::Param(name.to_string()));
            }
            return Err(format!(
                "egress entry '{text}': a param name is letters, digits and '_'"
            ));
        }
        let host = text.to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            && !bare.starts_with('.')
            && !bare.contains("..");
        if valid {
            Ok(Entry::Host(host))
        } else {
            Err(format!(
                "egress entry '{}' is not a host: write api.example.com, *.example.com, host:8443 or param:NAME",
                crate::text::truncate(text, 60)
            ))
        }
    }

    /// How `show`, `doc` and the banner name it.
    pub fn describe(&self) -> String {
        match self {
            Entry::Host(h) => h.clone(),
            Entry::Param(p) => format!("the host of param {p}"),
        }
    }
}

/// The vendor modules a script may call (they reach their configured endpoints): one per
/// vendor spec.
pub fn vendor_modules() -> impl Iterator<Item = &'static str> {
    runbook_vendors::spec::SPECS.iter().map(|s| s.name)
}

/// One line for the banner, `show` and `doc`: the declared hosts, then the vendor modules.
pub fn summary(hosts: &[String], modules: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if hosts.is_empty() {
        parts.push("no other host".into());
    } else {
        parts.push(hosts.join(", "));
    }
    if !modules.is_empty() {
        parts.push(format!("vendor modules {}", modules.join(", ")));
    }
    parts.push("loopback".into());
    parts.join(" · ")
}

/// The declared entries as words (`param:` entries named, not resolved): for `show`/`doc`.
pub fn declared(entries: &[Entry], modules: &[&str]) -> String {
    let hosts: Vec<String> = entries.iter().map(Entry::describe).collect();
    summary(&hosts, modules)
}

/// The URLs a param's value holds: a URL, or a list of them (`health_urls`).
pub fn urls_in(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(u) => vec![u.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// The egress of one run: the declared hosts with `param:` entries resolved.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Host patterns, lower-case, each with an optional `:port`.
    hosts: Vec<String>,
    /// False for the REPL without a runbook: an operator at the keyboard declares nothing.
    pub enforced: bool,
}

impl Egress {
    pub fn unrestricted() -> Egress {
        Egress {
            hosts: Vec::new(),
            enforced: false,
        }
    }

    /// Resolves the entries against the run's params (`param:NAME` takes the host, and port
    /// if any, of the URL in that param).
    pub fn resolve(entries: &[Entry], params: &serde_json::Value) -> Egress {
        let mut hosts = Vec::new();
        for e in entries {
            match e {
                Entry::Host(h) => hosts.push(h.clone()),
                Entry::Param(p) => {
                    for u in params.get(p).map(urls_in).unwrap_or_default() {
                        if let Some(a) = reqwest::Url::parse(u).ok().and_then(|u| authority(&u)) {
                            hosts.push(a.to_ascii_lowercase());
                        }
                    }
                }
            }
        }
        Egress {
            hosts,
            enforced: true,
        }
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Whether a request to `url` may leave the process.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        if !self.enforced || is_loopback(url) {
            return true;
        }
        let Some(host) = url.host_str().map(|h| h.to_ascii_lowercase()) else {
            return false;
        };
        let port = url.port_or_known_default();
        self.hosts.iter().any(|pattern| {
            let (pat_host, pat_port) = split_port(pattern);
            let port_ok = match pat_port {
                Some(p) => Some(p) == port,
                None => true,
            };
            let host_ok = match pat_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == pat_host,
            };
            port_ok && host_ok
        })
    }
}

/// `host` or `host:port` (a port only when the URL names one), as egress entries write it.
pub fn authority(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

fn split_port(pattern: &str) -> (&str, Option<u16>) {
    match pattern.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || pattern.starts_with('[') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (pattern, None),
        },
        _ => (pattern, None),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> reqwest::Url {
        reqwest::Url::parse(u).unwrap()
    }

    #[test]
    fn declared_hosts_wildcards_ports_and_params() {
        let entries: Vec<Entry> = [
            "api.sendgrid.com",
            "*.example.com",
            "hooks.example.org:8443",
            "param:app",
        ]
        .iter()
        .map(|e| Entry::parse(e).unwrap())
        .collect();
        let e = Egress::resolve(
            &entries,
            &serde_json::json!({"app": "https://raptor.internal:9000/x"}),
        );
        assert!(e.allows(&url("https://api.sendgrid.com/v3/scopes")));
        assert!(e.allows(&url("https://a.b.example.com/")));
        assert!(!e.allows(&url("https://example.com/")));
        assert!(e.allows(&url("https://hooks.example.org:8443/")));
        assert!(!e.allows(&url("https://hooks.example.org/")));
        assert!(e.allows(&url("https://raptor.internal:9000/api")));
        assert!(!e.allows(&url("https://raptor.internal/api")));
        assert!(!e.allows(&url("https://evil.example.net/")));
        assert!(!e.allows(&url("https://api.sendgrid.com.evil.net/")));
        assert!(e.allows(&url("http://127.0.0.1:8080/")));
        assert!(Entry::parse("https://x.com/path").is_err());
        assert!(Entry::parse("param:").is_err());
    }
}
