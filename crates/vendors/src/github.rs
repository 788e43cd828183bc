//! GitHub Actions secrets client: public key, sealed-box encryption, set and list.

use super::error::{ErrorKind, VendorCode, VendorError};
use super::transport::{
    decode_json, endpoint, ErrorDetail, HeaderValueSource, RawResponse, Request, Transport,
};
use base64::Engine as _;
use reqwest::Method;
use runbook_secret::Secret;
use serde::Deserialize;

const VENDOR: &str = crate::Vendor::Github.name();

/// A repository's Actions public key (`GET …/actions/secrets/public-key`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PublicKey {
    pub key_id: String,
    /// Base64 of the 32-byte Curve25519 key.
    pub key: String,
}

/// A repository secret's metadata (GitHub never returns values).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RepoSecret {
    pub name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

/// Whether a PUT created the secret (201) or updated it (204).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    Created,
    Updated,
}

/// Client for GitHub's REST API.
#[derive(Debug, Clone)]
pub struct GithubClient {
    transport: Transport,
    base: String,
    token: Option<Secret>,
}

impl GithubClient {
    pub fn new(transport: Transport, base: impl Into<String>, token: Option<Secret>) -> Self {
        GithubClient {
            transport,
            base: base.into().trim_end_matches('/').to_string(),
            token,
        }
    }

    /// The token, or the configuration error saying it is missing, with `hint`.
    fn token(&self, hint: &str) -> Result<&Secret, VendorError> {
        self.token.as_ref().ok_or_else(|| {
            VendorError::config(
                VENDOR,
                "no token: GITHUB_TOKEN (or GH_TOKEN) is not set",
                hint,
            )
        })
    }

    /// `repo` is `owner/name`.
    fn request(&self, method: Method, repo: &str, tail: &[&str]) -> Result<Request, VendorError> {
        let token = self.token("set GITHUB_TOKEN to a token with the repo's secrets permission (e.g. from `gh auth token`)")?;
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                VendorError::new(
                    VENDOR,
                    method.as_str(),
                    repo,
                    ErrorKind::Validation,
                    format!("'{repo}' is not a repository name of the form owner/name"),
                )
            })?;
        let mut segments = vec!["repos", owner, name];
        segments.extend_from_slice(tail);
        self.at(method, &segments, token)
    }

    /// A request to the API path made of `segments`, routed by it.
    fn at(
        &self,
        method: Method,
        segments: &[&str],
        token: &Secret,
    ) -> Result<Request, VendorError> {
        let url = endpoint(
            VENDOR,
            &self.base,
            "GITHUB_API_URL",
            "set GITHUB_API_URL to e.g. https://api.github.com",
            segments,
        )?;
        let route = format!("/{}", segments.join("/"));
        Ok(api_request(method, url.to_string(), route, token))
    }

    /// `GET /repos/{owner}/{repo}/actions/secrets/public-key`.
    pub async fn public_key(&self, repo: &str) -> Result<PublicKey, VendorError> {
        let req = self.request(Method::GET, repo, &["actions", "secrets", "public-key"])?;
        self.transport.send_json(req, parse_error).await
    }

    /// Encrypts `value` to the repo's key (libsodium sealed box) and PUTs it.
    pub async fn set_secret(
        &self,
        repo: &str,
        name: &str,
        value: &Secret,
    ) -> Result<SecretWrite, VendorError> {
        let key = self.public_key(repo).await?;
        let route = format!("/repos/{repo}/actions/secrets/{name}");
        let encrypted = seal(&key, value.expose())
            .map_err(|m| VendorError::new(VENDOR, "PUT", &route, ErrorKind::InvalidResponse, m))?;
        let req = self
            .request(Method::PUT, repo, &["actions", "secrets", name])?
            .header("Content-Type", "application/json")
            .json(serde_json::json!({"encrypted_value": encrypted, "key_id": key.key_id}));
        let resp = self.transport.send_checked(req, parse_error).await?;
        Ok(if resp.status == 201 {
            SecretWrite::Created
        } else {
            SecretWrite::Updated
        })
    }

    /// `GET /user/repos`, following `Link: rel="next"` pages: every repository the token can
    /// see, as `owner/name`.
    pub async fn repos(&self) -> Result<Vec<String>, VendorError> {
        #[derive(Deserialize)]
        struct Repo {
            full_name: String,
        }
        let token = self.token("set GITHUB_TOKEN to a token that can list the repositories")?;
        let url = format!("{}/user/repos?per_page=100", self.base);
        let req = api_request(Method::GET, url, "/user/repos", token);
        every_page(self, req, 100, false, |req, resp| {
            let page: Vec<Repo> = decode_json(req, resp)?;
            Ok(page.into_iter().map(|r| r.full_name).collect())
        })
        .await
    }

    /// `GET /repos/{owner}/{repo}/actions/secrets/{name}`: its dates, `None` when the repo
    /// has no such secret (GitHub never returns the value).
    pub async fn secret_info(
        &self,
        repo: &str,
        name: &str,
    ) -> Result<Option<RepoSecret>, VendorError> {
        let req = self.request(Method::GET, repo, &["actions", "secrets", name])?;
        match self
            .transport
            .send_unless(req.clone(), parse_error, 404)
            .await?
        {
            Some(resp) => decode_json(&req, &resp).map(Some),
            None => Ok(None),
        }
    }

    /// `GET /repos/{owner}/{repo}`: whether this token sees the repository. GitHub answers
    /// 404, not 403, for a private repository a token cannot see, and the same 404 for a
    /// secret a repository does not have: only a repository seen makes a 404 mean "absent".
    pub async fn repo_visible(&self, repo: &str) -> Result<bool, VendorError> {
        let req = self.request(Method::GET, repo, &[])?;
        Ok(self
            .transport
            .send_unless(req, parse_error, 404)
            .await?
            .is_some())
    }

    /// `GET /repos/{owner}/{repo}/environments`: the names of its deployment environments
    /// (each may hold secrets of its own, which win over the repository's).
    pub async fn environments(&self, repo: &str) -> Result<Vec<String>, VendorError> {
        #[derive(Deserialize)]
        struct Env {
            name: String,
        }
        #[derive(Deserialize)]
        struct Envs {
            environments: Vec<Env>,
        }
        // Every page (a repository with an environment per pull request has hundreds):
        // the 101st held `production`'s copy, never looked at (cold review).
        let mut req = self.request(Method::GET, repo, &["environments"])?;
        req.url.push_str("?per_page=100");
        // 404: environments are not available to this repository (a private repository on
        // a plan without them), so it has none.
        every_page(self, req, 20, true, |req, resp| {
            let envs: Envs = decode_json(req, resp)?;
            Ok(envs.environments.into_iter().map(|e| e.name).collect())
        })
        .await
    }

    /// `GET /repos/{owner}/{repo}/environments/{env}/secrets/{name}`: its dates, `None` when
    /// the environment has no such secret.
    pub async fn environment_secret_info(
        &self,
        repo: &str,
        env: &str,
        name: &str,
    ) -> Result<Option<RepoSecret>, VendorError> {
        let req = self.request(Method::GET, repo, &["environments", env, "secrets", name])?;
        match self
            .transport
            .send_unless(req.clone(), parse_error, 404)
            .await?
        {
            Some(resp) => decode_json(&req, &resp).map(Some),
            None => Ok(None),
        }
    }

    /// `GET /orgs/{org}/actions/secrets/{name}`: its dates, `None` when the organisation has
    /// no such secret (or `org` is a user, which has no organisation secrets: 404 too).
    pub async fn org_secret_info(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<RepoSecret>, VendorError> {
        let token = self.token(
            "set GITHUB_TOKEN to a token that can read the organisation's secrets (admin:org)",
        )?;
        let req = self.at(
            Method::GET,
            &["orgs", org, "actions", "secrets", name],
            token,
        )?;
        match self
            .transport
            .send_unless(req.clone(), parse_error, 404)
            .await?
        {
            Some(resp) => decode_json(&req, &resp).map(Some),
            None => Ok(None),
        }
    }

    /// `GET /repos/{owner}/{repo}/actions/secrets`, following `Link: rel="next"` pages (100
    /// a page): every secret of the repository.
    pub async fn list_secrets(&self, repo: &str) -> Result<Vec<RepoSecret>, VendorError> {
        #[derive(Deserialize)]
        struct List {
            secrets: Vec<RepoSecret>,
        }
        let mut req = self.request(Method::GET, repo, &["actions", "secrets"])?;
        req.url.push_str("?per_page=100");
        // A repository holds at most 100 secrets (GitHub's limit): the bound stops a loop.
        every_page(self, req, 10, false, |req, resp| {
            let list: List = decode_json(req, resp)?;
            Ok(list.secrets)
        })
        .await
    }
}

/// A REST API request as GitHub documents it: its media type, API version and the token.
fn api_request(method: Method, url: String, route: impl Into<String>, token: &Secret) -> Request {
    Request::new(VENDOR, method, url)
        .route(route)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header("Authorization", HeaderValueSource::Bearer(token.clone()))
}

/// libsodium `crypto_box_seal` of `plaintext` to `key`, base64 (standard, padded).
pub(crate) fn seal(key: &PublicKey, plaintext: &str) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(key.key.trim())
        .map_err(|e| format!("the repository public key is not base64: {e}"))?;
    let pk = crypto_box::PublicKey::from_slice(&raw)
        .map_err(|_| "the repository public key is not 32 bytes".to_string())?;
    let sealed = pk
        .seal(&mut crypto_box::aead::OsRng, plaintext.as_bytes())
        .map_err(|_| "encryption failed".to_string())?;
    Ok(b64.encode(sealed))
}

/// The `rel="next"` URL of a `Link` header, when it is on `base`'s origin: the next page
/// is asked for with the token, and an answer must not send it to another host (a redirect
/// to one drops the Authorization header; a link must not carry it there either). `Err`
/// when there is one this does not read (GitHub Enterprise reached by another name writes
/// its own host), so that a listing cut short is an error, not a clean partial list
/// (discovery would miss the repositories past it, and the old value be revoked under them).
fn next_page(link: Option<&str>, base: &str) -> Result<Option<String>, String> {
    let Some(next) = link.and_then(|link| {
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            params.contains("rel=\"next\"").then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    }) else {
        return Ok(None);
    };
    let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
    if origin(&next).is_some() && origin(&next) == origin(base) {
        return Ok(Some(next));
    }
    let host = reqwest::Url::parse(&next)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "an address that is not a URL".into());
    Err(format!(
        "its next page is on {host}, not on GITHUB_API_URL's host: not asked with the token (set GITHUB_API_URL to the host GitHub names)"
    ))
}

/// Every page of a listing at `url`, `most` pages at most: `Err` when more are left, or
/// the next one is not read (`next_page`).
/// `absent`: a 404 to the first page is an empty listing (a repository without
/// environments), not an error.
async fn every_page<T>(
    client: &GithubClient,
    mut req: Request,
    most: usize,
    absent: bool,
    take: impl Fn(&Request, &RawResponse) -> Result<Vec<T>, VendorError>,
) -> Result<Vec<T>, VendorError> {
    let mut out = Vec::new();
    for page_no in 0..most {
        let resp = if absent && page_no == 0 {
            match client
                .transport
                .send_unless(req.clone(), parse_error, 404)
                .await?
            {
                Some(resp) => resp,
                None => return Ok(out),
            }
        } else {
            client
                .transport
                .send_checked(req.clone(), parse_error)
                .await?
        };
        out.extend(take(&req, &resp)?);
        let incomplete = |why: String| {
            req.error(
                ErrorKind::InvalidResponse,
                format!("the listing is incomplete: {why}"),
            )
        };
        match next_page(resp.header("link"), &client.base).map_err(incomplete)? {
            Some(_) if page_no + 1 == most => {
                return Err(incomplete(format!("longer than runbook reads ({most} pages)"))
                    .with_hint("name the repositories the runbook covers (its github_repos) instead of listing every one the token sees"));
            }
            Some(next) => req.url = next,
            None => break,
        }
    }
    Ok(out)
}

/// Reads `{"message": "...", "documentation_url": "..."}`.
fn parse_error(resp: &RawResponse) -> ErrorDetail {
    #[derive(Deserialize)]
    struct Body {
        message: Option<String>,
    }
    let message = serde_json::from_slice::<Body>(&resp.body)
        .ok()
        .and_then(|b| b.message);
    let wait = resp
        .asked_wait()
        .map(|d| format!("GitHub's rate limit for this token is spent; it allows requests again in about {} minute(s)", d.as_secs().div_ceil(60)));
    let (kind, hint) = match resp.status {
        401 => (
            Some(ErrorKind::Unauthorized),
            Some("check GITHUB_TOKEN (it may be expired or revoked)"),
        ),
        403 | 429 if resp.is_rate_limited() => {
            return ErrorDetail {
                code: None::<VendorCode>,
                message,
                kind: Some(ErrorKind::RateLimited),
                hint: wait,
            }
        }
        403 => (
            Some(ErrorKind::Forbidden),
            Some("the token lacks the Actions secrets permission on this repository"),
        ),
        404 => (
            Some(ErrorKind::NotFound),
            Some("check the owner/repo name; GitHub also answers 404 when the token cannot see the repository"),
        ),
        _ => (None, None),
    };
    ErrorDetail {
        code: None::<VendorCode>,
        message,
        kind,
        hint: hint.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{start, start_with};
    use runbook_sandbox::Scenario;
    use runbook_secret::Source;

    fn scenario() -> Scenario {
        Scenario::default().with_github_repo("raxx/raptor")
    }

    /// A `next` page on another origin (host, port or scheme) is not followed: it would be
    /// asked for with the token (found by a cold review: a hostile answer collected it).
    #[test]
    fn a_next_page_is_followed_only_on_the_apis_own_origin() {
        let base = "https://api.github.com";
        let link = |u: &str| format!("<{u}>; rel=\"next\", <{base}/x?page=9>; rel=\"last\"");
        assert_eq!(
            next_page(
                Some(&link("https://api.github.com/user/repos?page=2")),
                base
            ),
            Ok(Some("https://api.github.com/user/repos?page=2".to_string()))
        );
        assert_eq!(next_page(None, base), Ok(None));
        assert_eq!(
            next_page(
                Some("<https://api.github.com/x?page=1>; rel=\"prev\""),
                base
            ),
            Ok(None)
        );
        for elsewhere in [
            "https://collector.example/steal?page=2",
            "http://api.github.com/user/repos?page=2",
            "https://api.github.com:8443/user/repos?page=2",
            "https://api.github.com.evil.example/user/repos",
            "/user/repos?page=2",
        ] {
            // Not asked for, and the listing is said to be incomplete.
            assert!(
                next_page(Some(&link(elsewhere)), base).is_err(),
                "{elsewhere}"
            );
        }
    }

    /// Environments past the first page are read (cold review: one page only, and a
    /// repository with an environment per pull request kept `production`'s copy of the old
    /// value where discovery never looked).
    #[tokio::test]
    async fn every_page_of_environments_is_read() {
        let mut sc = Scenario::default();
        let mut repo = runbook_sandbox::scenario::RepoSpec {
            name: "raxx/raptor".into(),
            ..Default::default()
        };
        for i in 0..5 {
            repo.environments
                .insert(format!("pr-{i:03}"), Default::default());
        }
        repo.environments
            .insert("production".into(), Default::default());
        sc.github.repos.push(repo);
        sc.github.page_size = Some(2);
        let (sb, v) = start(sc).await;
        let envs = v.github().environments("raxx/raptor").await.unwrap();
        assert_eq!(envs.len(), 6, "{envs:?}");
        assert!(envs.iter().any(|e| e == "production"), "{envs:?}");
        // Three pages of two, each asked once (review: the first was asked twice).
        assert_eq!(
            sb.count_requests("github", "GET", "/repos/raxx/raptor/environments"),
            3
        );
    }

    #[tokio::test]
    async fn sets_an_encrypted_secret_the_repo_can_decrypt() {
        let (sb, v) = start(scenario()).await;
        let g = v.github();
        let key = g.public_key("raxx/raptor").await.unwrap();
        assert!(!key.key_id.is_empty());
        let value = Secret::new("gh-secret-value-0001", Source::Literal);
        assert_eq!(
            g.set_secret("raxx/raptor", "POSTMARK_SERVER_TOKEN", &value)
                .await
                .unwrap(),
            SecretWrite::Created
        );
        assert_eq!(
            g.set_secret("raxx/raptor", "POSTMARK_SERVER_TOKEN", &value)
                .await
                .unwrap(),
            SecretWrite::Updated
        );
        let st = sb.state();
        assert_eq!(
            st["github"]["repos"]["raxx/raptor"]["secrets"]["POSTMARK_SERVER_TOKEN"],
            "gh-secret-value-0001"
        );
        let list = g.list_secrets("raxx/raptor").await.unwrap();
        assert_eq!(
            list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["POSTMARK_SERVER_TOKEN"]
        );
    }

    #[tokio::test]
    async fn errors_follow_githubs_statuses() {
        let (_sb, v) = start(scenario()).await;
        let value = Secret::new("gh-secret-value-0002", Source::Literal);
        let e = v.github().public_key("raxx/nope").await.unwrap_err();
        assert_eq!(
            (e.kind(), e.status(), e.message()),
            (ErrorKind::NotFound, Some(404), "Not Found")
        );
        let e = v
            .github()
            .set_secret("raxx/raptor", "GITHUB_TOKEN_X", &value)
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Validation, Some(422)));
        let e = v.github().list_secrets("not-a-repo").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    /// GitHub's secondary limit answers a write 403 with `retry-after`: the write is sent
    /// again after that wait (not reported as a permission problem), and the wait is counted.
    #[tokio::test]
    async fn a_secondary_limit_is_waited_out_and_the_wait_counted() {
        let mut sc = scenario();
        sc.github.secondary_limit = Some(runbook_sandbox::scenario::SecondaryLimitSpec {
            writes: 1,
            window_secs: 1,
            retry_after: true,
        });
        let (sb, v) = start(sc).await;
        let value = Secret::new("gh-secret-value-0003", Source::Literal);
        for name in ["FIRST_SECRET", "SECOND_SECRET"] {
            v.github()
                .set_secret("raxx/raptor", name, &value)
                .await
                .unwrap();
        }
        assert!(
            v.transport().rate_limit_wait() >= std::time::Duration::from_millis(900),
            "{:?}",
            v.transport().rate_limit_wait()
        );
        let refused = sb
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.status == Some(403))
            .count();
        assert_eq!(refused, 1);
    }

    #[tokio::test]
    async fn a_spent_rate_limit_is_reported_with_its_wait_not_as_a_permission_problem() {
        let mut sc = scenario();
        sc.github.rate_limit = 1;
        let (_sb, v) = start(sc).await;
        v.github().public_key("raxx/raptor").await.unwrap();
        let e = v.github().public_key("raxx/raptor").await.unwrap_err();
        // The reset is about an hour away: longer than a run waits, so no retry.
        assert_eq!(
            (e.kind(), e.status(), e.attempts()),
            (ErrorKind::RateLimited, Some(403), 1)
        );
        assert!(
            e.help_text().contains("GitHub's rate limit for this token is spent; it allows requests again in about 60 minute(s)"),
            "{}",
            e.help_text()
        );
    }

    #[tokio::test]
    async fn the_secret_list_follows_every_page() {
        let mut sc = scenario();
        sc.github.page_size = Some(2);
        for name in ["A_ONE", "B_TWO", "C_THREE"] {
            sc.github.repos[0].secrets.insert(name.into(), "v".into());
        }
        let (sb, v) = start(sc).await;
        let names: Vec<String> = v
            .github()
            .list_secrets("raxx/raptor")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["A_ONE", "B_TWO", "C_THREE"]);
        assert_eq!(
            sb.count_requests("github", "GET", "/repos/raxx/raptor/actions/secrets"),
            2
        );
    }

    #[tokio::test]
    async fn a_bad_token_is_unauthorized() {
        let (_sb, v) = start_with(scenario(), |_, c| {
            c.github.token = Some(Secret::new("ghp_wrong_token_value", Source::Literal));
        })
        .await;
        let e = v.github().list_secrets("raxx/raptor").await.unwrap_err();
        assert_eq!(
            (e.kind(), e.status(), e.message()),
            (ErrorKind::Unauthorized, Some(401), "Bad credentials")
        );
        assert!(e.help_text().contains("GITHUB_TOKEN"));
    }

    #[test]
    fn sealed_boxes_open_with_the_secret_key() {
        let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = PublicKey {
            key_id: "1".into(),
            key: b64.encode(sk.public_key().as_bytes()),
        };
        let sealed = seal(&key, "hello-secret").unwrap();
        let opened = sk.unseal(&b64.decode(sealed).unwrap()).unwrap();
        assert_eq!(opened, b"hello-secret");
        assert!(seal(
            &PublicKey {
                key_id: "1".into(),
                key: "!!".into()
            },
            "x"
        )
        .is_err());
    }
}
