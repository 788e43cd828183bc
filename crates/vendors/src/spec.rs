//! What runbook knows of each vendor with a typed client, said once: its names, the
//! variables that configure it and their defaults, its dashboard, the writes it may repeat,
//! how discovery finds the places a value lives, where its answers hold credentials and how
//! it names its error codes. Configuration, preflight, egress, the banner, `runbook api`
//! and docs/api.md read it from here.

use crate::Vendor;

/// A base URL a vendor is reached at: the variables that set it (the first set wins), its
/// default, and how a value given becomes the base (`INFISICAL_DOMAIN` gains `/api`).
#[derive(Debug)]
pub struct Endpoint {
    pub vars: &'static [&'static str],
    pub default: &'static str,
    pub normalise: fn(&str) -> String,
}

/// A credential or setting a run needs: its variable (with the alternatives that do too)
/// and what it is for.
#[derive(Debug)]
pub struct Need {
    pub var: &'static str,
    /// Other variables that hold it as well (`GH_TOKEN`), or together replace it.
    pub or: &'static [&'static str],
    pub what: &'static str,
    /// Whether its value is a credential (a `Secret` from the moment it is read).
    pub secret: bool,
}

/// Where a vendor's answers hold credentials: reading them through `http::` must not turn
/// them into plain text, whatever the script declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFields {
    None,
    /// Infisical's secrets routes: every `secretValue` field.
    SecretValues,
    /// Heroku's config-vars: every top-level value (credentials and settings mixed).
    ConfigVars,
    /// Postmark's server routes: the `ApiTokens` lists.
    ApiTokens,
}

impl CredentialFields {
    /// Whether the string at `path` (dotted, under `key`) is a credential.
    pub fn holds(self, path: &str, key: &str) -> bool {
        match self {
            CredentialFields::None => false,
            CredentialFields::SecretValues => key == "secretValue",
            CredentialFields::ConfigVars => !path.contains('.'),
            CredentialFields::ApiTokens => path
                .rsplit('.')
                .nth(1)
                .is_some_and(|parent| parent == "ApiTokens"),
        }
    }
}

/// Which of a vendor's API routes answer with credentials, and where in the answer.
#[derive(Debug, Clone, Copy)]
pub struct CredentialRoutes {
    /// Whether a route (the path under the vendor's endpoint) is one of them.
    pub routes: fn(route: &str) -> bool,
    pub fields: CredentialFields,
}

impl CredentialRoutes {
    /// No route answers with credentials.
    pub const NONE: CredentialRoutes = CredentialRoutes {
        routes: |_| false,
        fields: CredentialFields::None,
    };

    /// Where the answer to `route` holds credentials.
    pub fn at(&self, route: &str) -> CredentialFields {
        if (self.routes)(route) {
            self.fields
        } else {
            CredentialFields::None
        }
    }
}

/// One vendor, as runbook knows it.
#[derive(Debug)]
pub struct VendorSpec {
    pub vendor: Vendor,
    /// The host module (`postmark::`), and the name in errors and audit entries.
    pub name: &'static str,
    /// As people call it.
    pub title: &'static str,
    pub api: Endpoint,
    /// Where the operator does what the API cannot, when that matters to a rotation.
    pub dashboard: Option<Endpoint>,
    /// What a run that calls it needs configured.
    pub needs: &'static [Need],
    /// The writes runbook sends, and whether sending one again is safe.
    pub writes: &'static [(&'static str, bool)],
    /// How `consumers` (and `std/consumers`) find the places a value lives.
    pub holders: &'static str,
    /// What the vendor calls the code in its error bodies.
    pub error_code: &'static str,
    /// The requests a minute of the account's pool runbook paces to, when it has one.
    pub pool_per_minute: Option<f64>,
    /// Which API routes answer with credentials, and where in the answer.
    pub credentials: CredentialRoutes,
}

fn trim_slash(s: &str) -> String {
    s.trim().trim_end_matches('/').to_string()
}

/// `INFISICAL_DOMAIN` → API base: `/api` is appended unless already there (as the CLI does).
pub(crate) fn infisical_api_base(domain: &str) -> String {
    let d = trim_slash(domain);
    if d.ends_with("/api") {
        d
    } else {
        format!("{d}/api")
    }
}

/// `HEROKU_HOST` → API base: a full URL if it starts with `http`, else `https://api.<host>`.
pub(crate) fn heroku_api_base(host: &str) -> String {
    let h = host.trim();
    if h.starts_with("http") {
        trim_slash(h)
    } else {
        format!("https://api.{}", trim_slash(h))
    }
}

/// Every vendor with a typed client, in the order the banner and the docs list them.
pub static SPECS: [VendorSpec; 4] = [
    VendorSpec {
        vendor: Vendor::Postmark,
        name: "postmark",
        title: "Postmark",
        api: Endpoint {
            vars: &["POSTMARK_API_URL"],
            default: "https://api.postmarkapp.com",
            normalise: trim_slash,
        },
        dashboard: Some(Endpoint {
            vars: &["POSTMARK_DASHBOARD_URL"],
            default: "https://account.postmarkapp.com",
            normalise: trim_slash,
        }),
        // Server tokens are passed to each call; the account's are not used.
        needs: &[],
        writes: &[
            ("POST /email (a validation email: never sent twice on its own)", false),
            ("dashboard: generate or delete a server token (the operator)", false),
        ],
        holders: "none: a Postmark token lives in the places that use it",
        error_code: "ErrorCode",
        pool_per_minute: None,
        credentials: CredentialRoutes {
            routes: |route| route.starts_with("/server"),
            fields: CredentialFields::ApiTokens,
        },
    },
    VendorSpec {
        vendor: Vendor::Infisical,
        name: "infisical",
        title: "Infisical",
        api: Endpoint {
            vars: &["INFISICAL_DOMAIN", "INFISICAL_API_URL"],
            default: "https://app.infisical.com/api",
            normalise: infisical_api_base,
        },
        dashboard: None,
        needs: &[
            Need {
                var: "INFISICAL_TOKEN",
                or: &[
                    "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID",
                    "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
                ],
                what: "an access token, or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and _CLIENT_SECRET for a machine identity",
                secret: true,
            },
            Need {
                var: "INFISICAL_PROJECT_ID",
                or: &[],
                what: "the project holding the secrets (Infisical → Project Settings)",
                secret: false,
            },
        ],
        writes: &[
            ("PATCH /api/v4/secrets/{name} (set a value: safe to repeat)", true),
            ("DELETE /api/v4/secrets/{name} (safe to repeat)", true),
        ],
        holders: "secrets of the project, in each environment and folder searched, compared by fingerprint",
        error_code: "error",
        pool_per_minute: None,
        credentials: CredentialRoutes {
            routes: |route| route.contains("/secrets"),
            fields: CredentialFields::SecretValues,
        },
    },
    VendorSpec {
        vendor: Vendor::Heroku,
        name: "heroku",
        title: "Heroku",
        api: Endpoint {
            vars: &["HEROKU_HOST"],
            default: "https://api.heroku.com",
            normalise: heroku_api_base,
        },
        dashboard: None,
        needs: &[Need {
            var: "HEROKU_API_KEY",
            or: &[],
            what: "an API key (`heroku auth:token`) or an OAuth token with read-protected and write-protected",
            secret: true,
        }],
        writes: &[
            ("PATCH /apps/{app}/config-vars (set values: safe to repeat)", true),
            ("DELETE /apps/{app}/dynos (restart: safe to repeat)", true),
        ],
        holders: "config vars of every app the key lists (GET /apps), compared by fingerprint",
        error_code: "id",
        // The account's pool: 4,500 requests an hour.
        pool_per_minute: Some(75.0),
        credentials: CredentialRoutes {
            routes: |route| route.trim_end_matches('/').ends_with("/config-vars"),
            fields: CredentialFields::ConfigVars,
        },
    },
    VendorSpec {
        vendor: Vendor::Github,
        name: "github",
        title: "GitHub",
        api: Endpoint {
            vars: &["GITHUB_API_URL"],
            default: "https://api.github.com",
            normalise: trim_slash,
        },
        dashboard: None,
        needs: &[Need {
            var: "GITHUB_TOKEN",
            or: &["GH_TOKEN"],
            what: "a token with the repositories' secrets permission (`gh auth token`); GH_TOKEN works too",
            secret: true,
        }],
        writes: &[(
            "PUT /repos/{repo}/actions/secrets/{name} (sealed to the repository's key: safe to repeat)",
            true,
        )],
        holders: "Actions secrets of every repository the token lists, by name (values cannot be read back)",
        error_code: "code",
        pool_per_minute: None,
        credentials: CredentialRoutes::NONE,
    },
];

impl Vendor {
    /// Everything runbook knows of this vendor.
    pub fn spec(self) -> &'static VendorSpec {
        // SPECS lists every vendor once, in `Vendor::ALL`'s order (a test holds it).
        &SPECS[self as usize]
    }
}

/// Every environment variable that configures a vendor: endpoints, dashboards and
/// credentials. A rehearsal takes these from the sandbox only, never from the operator's
/// shell.
pub fn settings() -> impl Iterator<Item = &'static str> {
    SPECS.iter().flat_map(|s| {
        let endpoints = s
            .api
            .vars
            .iter()
            .chain(s.dashboard.iter().flat_map(|d| d.vars));
        let needs = s
            .needs
            .iter()
            .flat_map(|n| std::iter::once(&n.var).chain(n.or));
        endpoints.chain(needs).copied()
    })
}

/// The specs, as a Markdown table for docs/api.md.
pub fn markdown() -> String {
    let mut out = vec![
        "| module | endpoint (variables, default) | needs | dashboard | writes (safe to repeat?) | where discovery looks |".to_string(),
        "| --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for s in &SPECS {
        let endpoint = |e: &Endpoint| format!("{} (default {})", e.vars.join(", "), e.default);
        let needs: Vec<String> = s
            .needs
            .iter()
            .map(|n| match n.or {
                [] => n.var.to_string(),
                or => format!("{} (or {})", n.var, or.join(", ")),
            })
            .collect();
        let writes: Vec<String> = s
            .writes
            .iter()
            .map(|(w, safe)| format!("{w}: {}", if *safe { "yes" } else { "no" }))
            .collect();
        out.push(format!(
            "| `{}::` | {} | {} | {} | {} | {} |",
            s.name,
            endpoint(&s.api),
            if needs.is_empty() {
                "-".to_string()
            } else {
                needs.join(", ")
            },
            s.dashboard.as_ref().map_or("-".to_string(), endpoint),
            writes.join("; "),
            s.holders
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_has_its_spec_in_its_place() {
        for v in Vendor::ALL {
            assert_eq!(v.spec().vendor, v);
            assert_eq!(v.spec().name, v.name());
        }
        assert_eq!(SPECS.len(), Vendor::ALL.len());
    }

    #[test]
    fn the_credential_fields_are_where_each_vendor_answers_with_them() {
        let heroku = Vendor::Heroku.spec();
        assert_eq!(
            heroku.credentials.at("/apps/a/config-vars"),
            CredentialFields::ConfigVars
        );
        assert!(CredentialFields::ConfigVars.holds("TOKEN", "TOKEN"));
        assert!(!CredentialFields::ConfigVars.holds("a.b", "b"));
        assert!(CredentialFields::ApiTokens.holds("Servers.0.ApiTokens.0", "0"));
        assert_eq!(
            Vendor::Postmark.spec().credentials.at("/email"),
            CredentialFields::None
        );
    }
}
