//! Consumer discovery: every place reachable with the configured credentials that holds a
//! secret's value. Values are compared by keyed fingerprint inside these calls: what comes
//! back names places, never values.

use super::{VendorError, Vendors};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where a value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub vendor: &'static str,
    /// The app, `env:path` or repository.
    pub place: String,
    /// The config var or secret name.
    pub var: String,
    /// False when the value cannot be read back (GitHub): a secret of that name exists, so
    /// it may hold the value.
    pub verified: bool,
    /// When it last changed, where the vendor says (GitHub).
    pub updated_at: Option<String>,
    /// GitHub's level: `repository`, `environment` (the place names it) or `organization`;
    /// empty elsewhere.
    pub scope: &'static str,
}

/// A place that could not be checked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    pub vendor: &'static str,
    pub place: String,
    pub error: String,
}

/// What one scan found and could not check.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub places: Vec<Place>,
    pub unchecked: Vec<Unchecked>,
    /// How many places were looked at.
    pub scanned: usize,
}

impl Scan {
    pub fn extend(&mut self, other: Scan) {
        self.places.extend(other.places);
        self.unchecked.extend(other.unchecked);
        self.scanned += other.scanned;
    }
}

/// A place whose check failed with `error`, or did not finish (`None`).
fn unchecked(vendor: &'static str, place: String, error: Option<VendorError>) -> Unchecked {
    Unchecked {
        vendor,
        place,
        error: error.map_or_else(
            || "the check did not finish (internal error)".into(),
            |e| e.to_string(),
        ),
    }
}

/// The keyed fingerprint a scan looks for: known from the start, or given once the value
/// has been read, so that the listings (which do not need it) go out first and only the
/// comparison waits for it.
#[derive(Clone)]
pub struct Wanted(tokio::sync::watch::Receiver<Option<String>>);

/// Gives a [`Wanted::later`] its fingerprint. Dropped without giving, the scans waiting on
/// it fail.
pub struct Give(tokio::sync::watch::Sender<Option<String>>);

impl Wanted {
    pub fn now(fp: impl Into<String>) -> Wanted {
        Wanted(tokio::sync::watch::channel(Some(fp.into())).1)
    }

    pub fn later() -> (Give, Wanted) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (Give(tx), Wanted(rx))
    }

    /// The fingerprint, once given.
    pub async fn get(&self) -> Result<String, VendorError> {
        let mut rx = self.0.clone();
        let given = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| v.clone());
        given.ok_or_else(|| {
            VendorError::new(
                "discovery",
                "",
                "",
                crate::ErrorKind::Config,
                "the search ended before it was told what to look for",
            )
        })
    }
}

impl Give {
    pub fn give(self, fp: String) {
        // Nobody waiting (every scan failed already) is not an error here.
        let _ = self.0.send(Some(fp));
    }
}

/// Called with (done, total) as a long scan goes.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The Heroku apps among `apps` (every app the key can list when `None`) whose config
/// holds the value of fingerprint `fp`. Apps are read concurrently, paced to the pool.
pub async fn heroku(
    v: &Vendors,
    fp: &Wanted,
    apps: Option<Vec<String>>,
    progress: Progress,
) -> Result<Scan, VendorError> {
    let apps = match apps {
        Some(a) => a,
        None => v.heroku().apps().await?,
    };
    let total = apps.len();
    let done = Arc::new(AtomicUsize::new(0));
    let results = v
        .fan_out(apps.clone(), |v, app| {
            let (done, progress) = (done.clone(), progress.clone());
            async move {
                let r = v.heroku().config_vars(&app).await;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                r
            }
        })
        .await;
    // Every config is read before the fingerprint is waited for: a read holds one of the
    // fan-out's places only while it is sent, not while the value it is compared with is.
    let fp = fp.get().await?;
    let mut scan = Scan {
        scanned: total,
        ..Scan::default()
    };
    for (app, r) in apps.into_iter().zip(results) {
        match r {
            Some(Ok(vars)) => scan.places.extend(vars.holding(&fp).map(|var| Place {
                vendor: "heroku",
                place: app.clone(),
                var,
                verified: true,
                updated_at: None,
                scope: "",
            })),
            Some(Err(e)) => scan.unchecked.push(unchecked("heroku", app, Some(e))),
            None => scan.unchecked.push(unchecked("heroku", app, None)),
        }
    }
    Ok(scan)
}

/// The Infisical secrets of `project_id` in each of `envs`, at `path` and below, that hold
/// the value of fingerprint `fp`.
pub async fn infisical(
    v: &Vendors,
    fp: &Wanted,
    project_id: &str,
    envs: &[String],
    path: &str,
) -> Scan {
    let mut scan = Scan::default();
    // Every environment at once: they are independent listings.
    let (project, root, fp_owned) = (project_id.to_string(), path.to_string(), fp.clone());
    let results = v
        .fan_out(envs.to_vec(), |v, env| {
            let (project, root, fp) = (project.clone(), root.clone(), fp_owned.clone());
            async move {
                v.infisical()
                    .secrets_holding(&project, &env, &root, &fp)
                    .await
            }
        })
        .await;
    for (env, r) in envs.iter().zip(results) {
        scan.scanned += 1;
        match r {
            Some(Ok(holding)) => {
                scan.places
                    .extend(holding.found.into_iter().map(|(p, name)| Place {
                        vendor: "infisical",
                        place: format!("{env}:{p}"),
                        var: name,
                        verified: true,
                        updated_at: None,
                        scope: "",
                    }));
                for (p, name) in holding.hidden {
                    let why = VendorError::new(
                        "infisical",
                        "GET",
                        "/api/v4/secrets",
                        crate::ErrorKind::Forbidden,
                        format!("this identity may see {name} but not read its value (Infisical leaves such a secret out of a listing with values), so whether it holds the value is unknown"),
                    )
                    .with_hint("grant the identity Read Value on that path, or check the secret by hand");
                    let place = format!("{env}:{p} {name}");
                    scan.unchecked
                        .push(unchecked("infisical", place, Some(why)));
                }
            }
            Some(Err(e)) => {
                let place = format!("{env}:{path}");
                scan.unchecked.push(unchecked("infisical", place, Some(e)));
            }
            None => scan
                .unchecked
                .push(unchecked("infisical", format!("{env}:{path}"), None)),
        }
    }
    scan
}

/// What one repository holds under `name`: its own secret, and its environments' (which win
/// over it in the workflows that deploy there).
struct RepoFinding {
    own: Result<Option<crate::github::RepoSecret>, VendorError>,
    environments: Result<Vec<String>, VendorError>,
    in_environments: Vec<(
        String,
        Result<Option<crate::github::RepoSecret>, VendorError>,
    )>,
}

/// Every Actions secret named `name` a workflow of `repos` may see: each repository's, each
/// of its deployment environments' and its organisation's (GitHub's precedence: environment
/// over repository over organisation, so a rotation that updates only the repository's copy
/// leaves the others serving the old value). GitHub never returns values: each is a
/// possible holder. An organisation the token cannot read (no `admin:org`) is unchecked.
pub async fn github(
    v: &Vendors,
    name: &str,
    repos: Option<Vec<String>>,
) -> Result<Scan, VendorError> {
    // Repositories the token listed are ones it sees; ones named by the runbook may not be.
    let (repos, listed) = match repos {
        Some(r) => (r, false),
        None => (v.github().repos().await?, true),
    };
    let name_owned = name.to_string();
    let results = v
        .fan_out(repos.clone(), |v, repo| {
            let name = name_owned.clone();
            async move {
                let gh = v.github();
                let mut own = gh.secret_info(&repo, &name).await;
                // A 404 from a repository this token cannot see says nothing of its secrets.
                if !listed && matches!(own, Ok(None)) {
                    own = match gh.repo_visible(&repo).await {
                        Ok(true) => Ok(None),
                        Ok(false) => Err(VendorError::new(
                            "github",
                            "GET",
                            format!("/repos/{repo}"),
                            crate::ErrorKind::NotFound,
                            "this token cannot see the repository (GitHub answers 404 for a private repository a token cannot read), so whether it holds the secret is unknown",
                        )
                        .with_hint("give the token read access to the repository (a fine-grained token: the repository and Secrets: read), or check the name")),
                        Err(e) => Err(e),
                    };
                }
                // A repository that could not be read is unchecked as a whole: its
                // environments are not asked about (they would fail the same way).
                let environments = match &own {
                    Ok(_) => gh.environments(&repo).await,
                    Err(_) => Ok(Vec::new()),
                };
                let mut in_environments = Vec::new();
                for env in environments.as_deref().unwrap_or(&[]) {
                    let found = gh.environment_secret_info(&repo, env, &name).await;
                    in_environments.push((env.clone(), found));
                }
                RepoFinding {
                    own,
                    environments,
                    in_environments,
                }
            }
        })
        .await;
    let mut owners: Vec<String> = repos
        .iter()
        .filter_map(|r| r.split_once('/').map(|(o, _)| o.to_string()))
        .collect();
    owners.sort();
    owners.dedup();
    let org_results = v
        .fan_out(owners.clone(), |v, org| {
            let name = name_owned.clone();
            async move { v.github().org_secret_info(&org, &name).await }
        })
        .await;
    let mut scan = Scan {
        scanned: repos.len() + owners.len(),
        ..Scan::default()
    };
    let found = |place: String, s: crate::github::RepoSecret, scope: &'static str| Place {
        vendor: "github",
        place,
        var: s.name,
        verified: false,
        updated_at: Some(s.updated_at),
        scope,
    };
    for (repo, r) in repos.into_iter().zip(results) {
        let Some(r) = r else {
            scan.unchecked.push(unchecked("github", repo, None));
            continue;
        };
        match r.own {
            Ok(Some(s)) => scan.places.push(found(repo.clone(), s, "repository")),
            Ok(None) => {}
            Err(e) => scan
                .unchecked
                .push(unchecked("github", repo.clone(), Some(e))),
        }
        if let Err(e) = r.environments {
            let place = format!("{repo} (its environments)");
            scan.unchecked.push(unchecked("github", place, Some(e)));
        }
        for (env, f) in r.in_environments {
            scan.scanned += 1;
            let place = format!("{repo} (environment {env})");
            match f {
                Ok(Some(s)) => scan.places.push(found(place, s, "environment")),
                Ok(None) => {}
                Err(e) => scan.unchecked.push(unchecked("github", place, Some(e))),
            }
        }
    }
    for (org, r) in owners.into_iter().zip(org_results) {
        let place = format!("organization {org}");
        match r {
            Some(Ok(Some(s))) => scan.places.push(found(place, s, "organization")),
            Some(Ok(None)) => {}
            Some(Err(e)) => scan.unchecked.push(unchecked("github", place, Some(e))),
            None => scan.unchecked.push(unchecked("github", place, None)),
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::start;
    use runbook_sandbox::scenario::{AppSpec, RepoSpec, SecretSpec};
    use runbook_sandbox::Scenario;
    use std::collections::BTreeMap;

    const TOKEN: &str = "disc0ver-0000-4000-8000-00000000d001";

    fn app(name: &str, var: &str, value: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            config: BTreeMap::from([(var.to_string(), value.to_string())]),
            boot_ms: 0,
            ..AppSpec::default()
        }
    }

    /// The SOP's world, plus an unlisted app with the token under its usual name, one under
    /// another name, one with another value, an Infisical copy in staging, and a repo.
    fn scenario() -> Scenario {
        let mut s = Scenario::default().with_postmark_token(TOKEN);
        s.heroku
            .apps
            .push(app("billing-worker", "POSTMARK_SERVER_TOKEN", TOKEN));
        s.heroku
            .apps
            .push(app("legacy-mailer", "MAIL_API_KEY", TOKEN));
        s.heroku.apps.push(app(
            "unrelated",
            "POSTMARK_SERVER_TOKEN",
            "something-else-0001",
        ));
        s.infisical.secrets.push(SecretSpec {
            environment: "staging".into(),
            path: "/mail".into(),
            name: "PM_TOKEN_COPY".into(),
            versions: vec![TOKEN.into()],
        });
        s.github.repos.push(RepoSpec {
            name: "raxx/raptor".into(),
            secrets: BTreeMap::from([("POSTMARK_SERVER_TOKEN".into(), TOKEN.into())]),
            ..RepoSpec::default()
        });
        s.github.repos.push(RepoSpec {
            name: "raxx/docs".into(),
            ..RepoSpec::default()
        });
        s
    }

    fn quiet() -> Progress {
        Arc::new(|_, _| {})
    }

    /// Where a scan found the value: each place and the name it is held under.
    fn found(scan: &Scan) -> Vec<(&str, &str)> {
        scan.places
            .iter()
            .map(|p| (p.place.as_str(), p.var.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn finds_every_app_and_copy_holding_the_value_under_any_name() {
        let (_sb, v) = start(scenario()).await;
        let fp = Wanted::now(runbook_secret::fingerprint(TOKEN));
        let scan = heroku(&v, &fp, None, quiet()).await.unwrap();
        assert_eq!(
            found(&scan),
            vec![
                ("billing-worker", "POSTMARK_SERVER_TOKEN"),
                ("legacy-mailer", "MAIL_API_KEY"),
                ("raxx-api-prod", "POSTMARK_SERVER_TOKEN"),
                ("raxx-api-staging", "POSTMARK_SERVER_TOKEN"),
            ]
        );
        assert_eq!((scan.scanned, scan.unchecked.len()), (5, 0));

        let envs = vec![
            "dev".to_string(),
            "staging".into(),
            "prod".into(),
            "qa".into(),
        ];
        let scan = infisical(&v, &fp, "raxx-project", &envs, "/").await;
        assert_eq!(
            found(&scan),
            vec![
                ("staging:/mail", "PM_TOKEN_COPY"),
                ("prod:/", "POSTMARK_SERVER_TOKEN")
            ]
        );
        // An environment the project does not have is reported, not silently skipped.
        assert_eq!(scan.unchecked.len(), 1);
        assert_eq!(scan.unchecked[0].place, "qa:/");

        let scan = github(&v, "POSTMARK_SERVER_TOKEN", None).await.unwrap();
        // Two repositories and their one organisation.
        assert_eq!(scan.scanned, 3);
        assert_eq!(scan.places.len(), 1);
        assert_eq!(
            (scan.places[0].place.as_str(), scan.places[0].verified),
            ("raxx/raptor", false)
        );
        assert!(scan.places[0].updated_at.is_some());
    }

    /// A copy in a folder whose values the identity may see but not read: Infisical leaves
    /// it out of the recursive listing with values, silently. Before: discovery took the
    /// folder as clean, and a revoke then broke that copy's consumer. It is unchecked now,
    /// named; the copies it can read are found as before. The same on a server that lists
    /// it with values, its value masked by the placeholder (`hidden_values_listed`): not
    /// taken for a secret holding `<hidden-by-infisical>`.
    #[tokio::test]
    async fn a_copy_whose_value_the_identity_cannot_read_is_unchecked_not_absent() {
        for masked in [false, true] {
            let mut s = scenario();
            s.infisical.secrets.push(SecretSpec {
                environment: "staging".into(),
                path: "/ci".into(),
                name: "CI_MAIL_TOKEN".into(),
                versions: vec![TOKEN.into()],
            });
            s.infisical.value_hidden_folders = vec!["/ci".into()];
            s.infisical.hidden_values_listed = masked;
            let (_sb, v) = start(s).await;
            let fp = Wanted::now(runbook_secret::fingerprint(TOKEN));
            let envs = vec!["staging".to_string()];
            let scan = infisical(&v, &fp, "raxx-project", &envs, "/").await;
            assert_eq!(found(&scan), vec![("staging:/mail", "PM_TOKEN_COPY")]);
            let unchecked: Vec<&str> = scan.unchecked.iter().map(|u| u.place.as_str()).collect();
            assert_eq!(unchecked, ["staging:/ci CI_MAIL_TOKEN"], "masked: {masked}");
            assert!(
                scan.unchecked[0]
                    .error
                    .contains("may see CI_MAIL_TOKEN but not read its value"),
                "{}",
                scan.unchecked[0].error
            );
        }
    }

    /// A repository the runbook names and the token cannot see answers 404 to everything,
    /// as a private one does on GitHub: it is unchecked, not clean. Before: its 404 read as
    /// "no such secret", and a copy of the old token there was never reported.
    #[tokio::test]
    async fn a_named_repository_the_token_cannot_see_is_unchecked() {
        let (sb, v) = start(scenario()).await;
        let repos = vec!["raxx/raptor".to_string(), "raxx/infra-private".to_string()];
        let scan = github(&v, "POSTMARK_SERVER_TOKEN", Some(repos))
            .await
            .unwrap();
        assert_eq!(scan.places.len(), 1);
        assert_eq!(scan.places[0].place, "raxx/raptor");
        let unchecked: Vec<&str> = scan.unchecked.iter().map(|u| u.place.as_str()).collect();
        assert_eq!(unchecked, ["raxx/infra-private"]);
        let why = &scan.unchecked[0].error;
        assert!(
            why.contains("this token cannot see the repository"),
            "{why}"
        );
        // A repository the token listed is one it sees: no extra request.
        github(&v, "POSTMARK_SERVER_TOKEN", None).await.unwrap();
        assert_eq!(
            sb.count_requests("github", "GET", "/repos/raxx/infra-private"),
            1
        );
    }

    /// A workflow sees an environment's secret over the repository's and the organisation's
    /// over neither: discovery named only repository secrets, so a rotation that updated
    /// `raxx/raptor`'s left the `prod` environment's and the organisation's copies serving the
    /// old value. Each level is now a possible holder, said as such.
    #[tokio::test]
    async fn environment_and_organisation_secrets_are_possible_holders_too() {
        let mut s = scenario();
        s.github.repos[0].environments.insert(
            "prod".into(),
            BTreeMap::from([("POSTMARK_SERVER_TOKEN".into(), TOKEN.into())]),
        );
        s.github.repos[0]
            .environments
            .insert("preview".into(), BTreeMap::new());
        s.github
            .org_secrets
            .push(runbook_sandbox::scenario::OrgSecretSpec {
                org: "raxx".into(),
                name: "POSTMARK_SERVER_TOKEN".into(),
                value: TOKEN.into(),
                ..Default::default()
            });
        let (_sb, v) = start(s).await;
        let scan = github(&v, "POSTMARK_SERVER_TOKEN", None).await.unwrap();
        let places: Vec<(&str, &str)> = scan
            .places
            .iter()
            .map(|p| (p.place.as_str(), p.scope))
            .collect();
        assert_eq!(
            places,
            [
                ("raxx/raptor", "repository"),
                ("raxx/raptor (environment prod)", "environment"),
                ("organization raxx", "organization"),
            ]
        );
        // Two repositories, two environments, one organisation.
        assert_eq!(scan.scanned, 5);
        assert!(scan.unchecked.is_empty(), "{:?}", scan.unchecked);
    }

    /// A repository that cannot be read is one unchecked place, not two (its environments
    /// were asked about and failed the same way), and a repository whose environment list
    /// answers 404 (environments unavailable to it) has none: before, it was unchecked.
    #[tokio::test]
    async fn an_unreadable_repository_is_unchecked_once_and_no_environments_is_none() {
        let mut s = scenario();
        for spec in [
            "github:GET:/repos/raxx/raptor/actions/secrets/POSTMARK_SERVER_TOKEN=403:always",
            "github:GET:/repos/raxx/docs/environments=404:always",
        ] {
            s.faults
                .push(runbook_sandbox::FaultRule::parse(spec).unwrap());
        }
        let (sb, v) = start(s).await;
        let scan = github(&v, "POSTMARK_SERVER_TOKEN", None).await.unwrap();
        let unchecked: Vec<&str> = scan.unchecked.iter().map(|u| u.place.as_str()).collect();
        assert_eq!(unchecked, ["raxx/raptor"], "{:?}", scan.unchecked);
        assert_eq!(
            sb.count_requests("github", "GET", "/repos/raxx/raptor/environments"),
            0
        );
        assert_eq!(
            sb.count_requests("github", "GET", "/repos/raxx/docs/environments"),
            1
        );
        assert!(scan.places.is_empty(), "{:?}", scan.places);
    }

    /// Hundreds of apps, each config read paced to a pool smaller than the scan: none is
    /// refused, and progress is reported for every app.
    #[tokio::test]
    async fn a_scan_of_500_apps_pages_the_list_and_stays_within_the_pool() {
        let mut s = Scenario::default().with_postmark_token(TOKEN);
        s.heroku.apps.clear();
        for i in 0..500 {
            let value = if i % 100 == 7 {
                TOKEN
            } else {
                "other-value-0000"
            };
            s.heroku
                .apps
                .push(app(&format!("app-{i:03}"), "POSTMARK_SERVER_TOKEN", value));
        }
        s.heroku.rate_limit.capacity = 100;
        s.heroku.rate_limit.per_minute = 30_000.0;
        let (sb, v) = start(s).await;
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let progress: Progress = Arc::new(move |_, total| {
            assert_eq!(total, 500);
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let fp = Wanted::now(runbook_secret::fingerprint(TOKEN));
        let scan = heroku(&v, &fp, None, progress).await.unwrap();
        assert_eq!(scan.scanned, 500);
        assert_eq!(seen.load(Ordering::Relaxed), 500);
        let found: Vec<&str> = scan.places.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            found,
            vec!["app-007", "app-107", "app-207", "app-307", "app-407"]
        );
        assert!(scan.unchecked.is_empty(), "{:?}", scan.unchecked);
        assert_eq!(sb.state()["heroku"]["rate_limit"]["refused"], 0);
    }
}
