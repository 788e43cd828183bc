//! `http::`: plain HTTP for vendors without a built-in module, so a new SOP needs no Rust.
//! Header values may be Secrets; JSON bodies may hold Secrets (sent, never shown). `bearer`
//! and `basic` build the Authorization header from a Secret without it becoming text, and
//! `secrets` names the response fields that are credentials (a key an API just created):
//! they come back as Secrets, and the raw body is redacted. `aws` signs the request with AWS
//! Signature Version 4 (AWS's own `aws-sigv4` crate), and an XML answer (AWS's query APIs)
//! comes back parsed as `xml`.

use super::placeholder::Placeholder;
use super::together::Reach;
use super::vendor_call::{dry_run_secret, is_dry_run_secret, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::events::WriteOutcome;
use crate::value::{self, throw};
use base64::Engine as _;
use reqwest::Method;
use rhai::{Array, Dynamic, Map, NativeCallContext};
use runbook_secret::{Secret, Source};
use runbook_vendors::spec::CredentialFields;
use runbook_vendors::{HeaderValueSource, Request};
use std::collections::BTreeMap;

/// Every option the verbs accept.
pub(crate) const OPTIONS: &[&str] = &[
    "headers",
    "json",
    "form",
    "query",
    "bearer",
    "basic",
    "secrets",
    "idempotent",
    "aws",
    "what",
    "record",
    "read_only",
    "changes",
];

/// `changes:` on a write: the vendors whose answers it may change, of those `run::together`
/// reads (postmark, infisical, heroku, github). Without it, any.
fn changes(opts: &Map, function: &str) -> R<Option<Reach>> {
    let Some(v) = opts.get("changes") else {
        return Ok(None);
    };
    let bad = |why: String| {
        throw(
            "usage",
            format!("{function}: changes {why}"),
            Some("e.g. changes: [\"postmark\"] for a call that sends an email through Postmark, changes: [] for one that changes no vendor's answers".into()),
        )
    };
    let names: Vec<String> = v
        .read_lock::<Array>()
        .ok_or_else(|| bad("must be a list of vendor names".into()))?
        .iter()
        .map(|n| {
            n.clone()
                .into_string()
                .map_err(|_| bad("must be a list of vendor names".into()))
        })
        .collect::<R<_>>()?;
    Reach::named(&names).map(Some).map_err(|n| {
        bad(format!(
            "names '{}', not one of postmark, infisical, heroku, github",
            crate::text::truncate(&n, 60)
        ))
    })
}

/// The response fields named by `secrets`, as dotted paths (`api_key`, `result.0.token`).
fn secret_paths(opts: &Map, function: &str) -> R<Vec<String>> {
    paths(opts, "secrets", function)
}

/// The response fields a write keeps with its outcome (`record`): never one of its secrets.
fn record_paths(opts: &Map, function: &str, secrets: &[String]) -> R<Vec<String>> {
    let record = paths(opts, "record", function)?;
    if let Some(p) = record.iter().find(|p| secrets.contains(p)) {
        return Err(throw(
            "usage",
            format!(
                "{function}: record names {p}, which secrets names too: a secret is never recorded"
            ),
            Some(
                "record the credential's id (e.g. record: [\"api_key_id\"]), never its value"
                    .into(),
            ),
        ));
    }
    Ok(record)
}

/// A list option of response field paths.
fn paths(opts: &Map, option: &str, function: &str) -> R<Vec<String>> {
    let Some(v) = opts.get(option) else {
        return Ok(Vec::new());
    };
    let bad = || {
        throw(
            "usage",
            format!("{function}: {option} must be a list of response field paths"),
            Some(format!(
                "e.g. {option}: [\"api_key\"] or {option}: [\"result.token\"]"
            )),
        )
    };
    let Some(list) = v.read_lock::<Array>().map(|a| a.clone()) else {
        return Err(bad());
    };
    list.iter()
        .map(|p| {
            if p.is_string() && !p.to_string().is_empty() {
                Ok(p.to_string())
            } else {
                Err(bad())
            }
        })
        .collect()
}

fn auth_header(opts: &Map, function: &str) -> R<Option<HeaderValueSource>> {
    let bearer = opts.get("bearer");
    let basic = opts.get("basic");
    if bearer.is_some() && basic.is_some() {
        return Err(throw(
            "usage",
            format!("{function}: give either bearer or basic, not both"),
            None,
        ));
    }
    if let Some(b) = bearer {
        let Some(s) = b.read_lock::<Secret>().map(|s| s.clone()) else {
            return Err(throw(
                "usage",
                format!("{function}: bearer must be a Secret"),
                Some("read the token with infisical::secret(...).value, secret::from_env(...) or prompt::secret(...)".into()),
            ));
        };
        // Sent as it is by the transport: an opaque value joins the redactor now.
        s.expose_to_send();
        return Ok(Some(HeaderValueSource::Bearer(s)));
    }
    let Some(b) = basic else { return Ok(None) };
    let usage = || {
        throw(
            "usage",
            format!("{function}: basic must be #{{user: string, password: Secret}}"),
            Some("e.g. basic: #{ user: \"api\", password: ctx.api_key }".into()),
        )
    };
    let Some(m) = b.read_lock::<Map>().map(|m| m.clone()) else {
        return Err(usage());
    };
    value::check_keys(&m, &["user", "password"], &format!("{function} basic"))?;
    // Some APIs put the key in the user part (`key:`): a Secret is sent as its value.
    let user = match m.get("user") {
        Some(u) => sent_text(u, "the basic-auth user")?,
        None => String::new(),
    };
    let Some(password) = m
        .get("password")
        .and_then(|p| p.read_lock::<Secret>().map(|s| s.clone()))
    else {
        return Err(usage());
    };
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{user}:{}", password.expose_to_send()));
    let header = Secret::new(
        format!("Basic {encoded}"),
        Source::Vendor {
            what: format!("basic auth from {}", password.source()),
        },
    );
    Ok(Some(HeaderValueSource::Secret(header)))
}

/// A query, form or basic-auth value as sent: a Secret as its value, else plain text (a
/// Secret interpolated into a string is refused).
fn sent_text(v: &Dynamic, what: &str) -> R<String> {
    match v.read_lock::<Secret>() {
        Some(s) => Ok(s.expose_to_send().to_string()),
        None => value::plain_string(&v.to_string(), what),
    }
}

/// A rhai value as the JSON a vendor receives: Secrets are sent as their value.
fn outgoing_json(v: &Dynamic, path: &str) -> R<serde_json::Value> {
    if let Some(s) = v.read_lock::<Secret>() {
        return Ok(s.expose_to_send().into());
    }
    if let Some(a) = v.read_lock::<Array>() {
        return a
            .iter()
            .map(|x| outgoing_json(x, path))
            .collect::<R<Vec<_>>>()
            .map(serde_json::Value::Array);
    }
    if let Some(m) = v.read_lock::<Map>() {
        let mut o = serde_json::Map::new();
        for (k, x) in m.iter() {
            o.insert(k.to_string(), outgoing_json(x, &format!("{path}.{k}"))?);
        }
        return Ok(serde_json::Value::Object(o));
    }
    if v.is_string() {
        return Ok(value::plain_string(&v.to_string(), path)?.into());
    }
    Ok(value::to_json(v))
}

/// Whether a URL's query holds a credential: named as one (`?api_key=...`, `&token=...`)
/// with a value shaped like one (`?page_token=2`, `?session_id=web` are not).
pub(crate) fn url_query_credential(url: &str) -> bool {
    // Every string field of an answer is asked: text with no scheme or no query is none.
    if !(url.contains(':') && url.contains('?')) {
        return false;
    }
    reqwest::Url::parse(url.trim()).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, v)| names_a_credential(&k) && !crate::text::names_something(&v))
    })
}

/// Whether a request header, query parameter or cookie of this name carries a credential
/// (so its value must be a Secret, never text that reaches labels, the journal or errors).
/// `Idempotency-Key` and the like are not credentials.
pub(crate) fn names_a_credential(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    if matches!(lower.as_str(), "idempotency-key" | "cache-key") {
        return false;
    }
    matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "key" | "sig"
    ) || [
        "token",
        "secret",
        "password",
        "passwd",
        "session",
        "signature",
        "credential",
        "auth",
        "apikey",
        "api-key",
        "access-key",
        "private-key",
    ]
    .iter()
    .any(|word| lower.contains(word))
        || lower.ends_with("-key")
}

/// A credential given as text where a Secret is needed: refused, naming the option.
fn needs_secret(function: &str, what: &str, name: &str) -> Box<rhai::EvalAltResult> {
    throw(
        "secret",
        format!("{function}: {what} '{name}' carries a credential, and its value is text: give it a Secret"),
        Some("a Secret comes from secret::from_env, a `secret: true` param, or a vendor's answer; as text it would reach labels, the journal and errors".into()),
    )
}

/// A URL that carries a credential in itself: userinfo (`https://user:pass@host`) or a
/// query parameter named as one. Either would reach every label and the journal.
fn check_url(url: &str, function: &str) -> R<()> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(throw(
            "secret",
            format!("{function}: the URL carries a user name or password (https://user:pass@host)"),
            Some("pass credentials with basic: #{ user: NAME, password: SECRET } (or bearer: SECRET), never in the URL".into()),
        ));
    }
    if let Some((name, _)) = parsed.query_pairs().find(|(k, _)| names_a_credential(k)) {
        return Err(throw(
            "secret",
            format!("{function}: the URL's query carries '{name}', a credential, as text"),
            Some(format!("prefer a header if the vendor takes one (bearer: SECRET, headers); if it takes the credential in the query only, pass it as query: #{{ {name}: SECRET }} (sent as its value, never shown here, but still in the URL, which proxies and the vendor's logs may keep: `runbook check` asks for the reason, `// check:allow(secret_in_url): ...`)")),
        ));
    }
    Ok(())
}

fn build(method: Method, url: &str, opts: &Map, function: &str) -> R<Request> {
    value::check_keys(opts, OPTIONS, function)?;
    let mut url = value::plain_string(url, "the URL")?;
    check_url(&url, function)?;
    if let Some(q) = opts
        .get("query")
        .and_then(|q| q.read_lock::<Map>().map(|m| m.clone()))
    {
        let mut parsed = reqwest::Url::parse(&url)
            .map_err(|e| throw("usage", format!("{function}: bad URL '{url}': {e}"), None))?;
        for (k, v) in q.iter() {
            // A Secret goes as its value (some APIs take keys only there); the label and
            // journal target are built from the URL the script wrote, without the query.
            if names_a_credential(k) && v.read_lock::<Secret>().is_none() {
                return Err(needs_secret(function, "the query parameter", k));
            }
            let v = sent_text(v, "a query value")?;
            parsed.query_pairs_mut().append_pair(k, &v);
        }
        url = parsed.to_string();
    }
    let read = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = Request::new("http", method, url);
    if let Some(auth) = auth_header(opts, function)? {
        req = req.header("Authorization", auth);
    }
    if let Some(h) = opts.get("headers") {
        let Some(headers) = h.read_lock::<Map>().map(|m| m.clone()) else {
            return Err(throw(
                "usage",
                format!("{function}: headers must be a map"),
                None,
            ));
        };
        for (k, v) in headers.iter() {
            if k.eq_ignore_ascii_case("authorization")
                && req.headers.iter().any(|(n, _)| n == "Authorization")
            {
                return Err(throw(
                    "usage",
                    format!("{function}: an Authorization header and bearer/basic both set it"),
                    None,
                ));
            }
            let value = if let Some(s) = v.read_lock::<Secret>() {
                // As a bearer: the transport sends it as it is.
                s.expose_to_send();
                HeaderValueSource::Secret(s.clone())
            } else {
                let text = value::plain_string(&v.to_string(), &format!("header {k}"))?;
                if names_a_credential(k) {
                    return Err(needs_secret(function, "the header", k));
                }
                HeaderValueSource::Plain(text)
            };
            req = req.header(k, value);
        }
    }
    if opts.contains_key("json") && opts.contains_key("form") {
        return Err(throw(
            "usage",
            format!("{function}: give either json or form, not both"),
            None,
        ));
    }
    if let Some(body) = opts.get("json") {
        req = req
            .header("Content-Type", "application/json")
            .json(outgoing_json(body, "the JSON body")?);
    }
    if let Some(form) = opts.get("form") {
        let Some(fields) = form.read_lock::<Map>().map(|m| m.clone()) else {
            return Err(throw(
                "usage",
                format!("{function}: form must be a map of fields"),
                None,
            ));
        };
        let mut encoded = reqwest::Url::parse("http://form.invalid/")
            .map_err(|e| throw("internal", format!("{function}: {e}"), None))?;
        for (k, v) in fields.iter() {
            let v = sent_text(v, &format!("form field {k}"))?;
            encoded.query_pairs_mut().append_pair(k, &v);
        }
        let body = encoded.query().unwrap_or("").to_string();
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
    }
    if let Some(aws) = opts.get("aws") {
        req = sign_aws(req, aws, function)?;
    }
    // Reads are retried; a write only when the script says repeating it is safe (some PUTs
    // roll a credential: each call issues a new one) or the vendor dedupes it by key.
    let said = value::opt_flag(opts, "idempotent", function)?;
    let keyed = req
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
    let reads = opts
        .get("read_only")
        .is_some_and(|v| v.as_bool() == Ok(true));
    Ok(req.idempotent(read || said || keyed || reads))
}

/// Signs the finished request with AWS Signature Version 4: `aws: #{access_key_id,
/// secret_access_key: Secret, session_token: Secret (optional), region, service}`. The
/// Authorization header it adds is a Secret (it names the key), as is the session token.
fn sign_aws(mut req: Request, aws: &Dynamic, function: &str) -> R<Request> {
    let usage = |why: &str| {
        throw(
            "usage",
            format!("{function}: aws {why}"),
            Some("aws: #{ access_key_id: ID, secret_access_key: SECRET, region: \"us-east-1\", service: \"iam\" } (session_token optional)".into()),
        )
    };
    let Some(m) = aws.read_lock::<Map>().map(|m| m.clone()) else {
        return Err(usage("must be a map"));
    };
    value::check_keys(
        &m,
        &[
            "access_key_id",
            "secret_access_key",
            "session_token",
            "region",
            "service",
        ],
        &format!("{function} aws"),
    )?;
    let text = |k: &str| -> R<String> {
        match m.get(k) {
            Some(v) => sent_text(v, &format!("aws {k}")),
            None => Err(usage(&format!("needs {k}"))),
        }
    };
    let secret = |k: &str| -> R<Option<Secret>> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => v
                .read_lock::<Secret>()
                .map(|s| Some(s.clone()))
                .ok_or_else(|| usage(&format!("{k} must be a Secret"))),
        }
    };
    let key_id = text("access_key_id")?;
    let Some(secret_key) = secret("secret_access_key")? else {
        return Err(usage("needs secret_access_key"));
    };
    let token = secret("session_token")?;
    let (region, service) = (text("region")?, text("service")?);
    if req
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        return Err(usage(
            "signs the request itself: drop bearer, basic and any Authorization header",
        ));
    }
    let body: Vec<u8> = match (&req.json, &req.body) {
        (Some(j), _) => serde_json::to_vec(j).unwrap_or_default(),
        (None, Some(b)) => b.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| {
            let value = match v {
                HeaderValueSource::Plain(p) => p.clone(),
                HeaderValueSource::Secret(s) => s.expose_to_send().to_string(),
                HeaderValueSource::Bearer(s) => format!("Bearer {}", s.expose_to_send()),
            };
            (n.to_lowercase(), value)
        })
        .collect();
    let identity = aws_credential_types::Credentials::new(
        key_id,
        secret_key.expose(),
        token.as_ref().map(|t| t.expose().to_string()),
        None,
        "runbook",
    )
    .into();
    let failed = |e: &dyn std::fmt::Display| {
        throw(
            "usage",
            format!("{function}: cannot sign the request: {e}"),
            None,
        )
    };
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name(&service)
        .time(std::time::SystemTime::now())
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        req.method.as_str(),
        req.url.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        aws_sigv4::http_request::SignableBody::Bytes(&body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let source = || Source::Vendor {
        what: format!("AWS signature from {}", secret_key.source()),
    };
    for (name, value) in instructions.headers() {
        let v = if name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case("x-amz-security-token")
        {
            HeaderValueSource::Secret(Secret::new(value, source()))
        } else {
            HeaderValueSource::Plain(value.to_string())
        };
        req = req.header(name, v);
    }
    Ok(req)
}

/// How deep an XML response may nest before it is refused unread: AWS's deepest answers
/// are under ten levels; 200,000 took 12 GB to parse.
pub(crate) const MAX_XML_DEPTH: usize = 64;

/// The deepest nesting of elements in `text`, counted without parsing (so a hostile
/// document costs one pass over its bytes): `<x>` opens, `</x>` and `<x/>` do not stay
/// open; comments, declarations and CDATA are skipped roughly, which only errs deeper.
pub(crate) fn xml_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = bytes[i..].iter().position(|b| *b == b'<') {
        let at = i + off;
        let end = bytes[at..]
            .iter()
            .position(|b| *b == b'>')
            .map_or(bytes.len(), |e| at + e);
        match bytes.get(at + 1) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'?') | Some(b'!') => {}
            _ if end > 0 && bytes.get(end - 1) == Some(&b'/') => {}
            _ => {
                depth += 1;
                deepest = deepest.max(depth);
            }
        }
        i = end.min(bytes.len().saturating_sub(1)) + 1;
        if i >= bytes.len() {
            break;
        }
    }
    deepest
}

/// An XML document as JSON: `{root: ...}`, an element with children as a map of them (a
/// name that repeats, or AWS's `member` items, as a list), a leaf as its text. Attributes
/// and namespaces are dropped.
pub(crate) fn xml_to_json(text: &str) -> Option<serde_json::Value> {
    fn element(n: roxmltree::Node) -> serde_json::Value {
        let children: Vec<roxmltree::Node> = n.children().filter(|c| c.is_element()).collect();
        if children.is_empty() {
            return n.text().unwrap_or("").trim().to_string().into();
        }
        if children.iter().all(|c| c.tag_name().name() == "member") {
            return children.into_iter().map(element).collect::<Vec<_>>().into();
        }
        let mut out = serde_json::Map::new();
        for c in &children {
            let name = c.tag_name().name();
            if out.contains_key(name) {
                continue;
            }
            let same: Vec<&roxmltree::Node> = children
                .iter()
                .filter(|x| x.tag_name().name() == name)
                .collect();
            let v = if same.len() > 1 {
                same.into_iter()
                    .map(|x| element(*x))
                    .collect::<Vec<_>>()
                    .into()
            } else {
                element(*c)
            };
            out.insert(name.to_string(), v);
        }
        out.into()
    }
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let mut out = serde_json::Map::new();
    out.insert(root.tag_name().name().to_string(), element(root));
    Some(out.into())
}

/// A response header's value as the script gets it: a Secret when its name says it carries
/// a credential (`Authorization`, cookies, anything naming a token, key, secret, password,
/// session or signature), when the script declared it (`secrets: ["headers.x-new-token"]`),
/// or when it holds a registered secret (a vendor echoing a request header back); text
/// otherwise.
fn header_value(name: &str, value: &str, declared: &[String], label: &str) -> Dynamic {
    let lower = name.to_ascii_lowercase();
    // An answer is judged more broadly than a request: any name with "key" in it, and the
    // cookies it sets.
    let by_name = names_a_credential(name) || lower == "set-cookie" || lower.contains("key");
    let declared = declared.iter().any(|p| {
        p.strip_prefix("headers.")
            .is_some_and(|h| h.eq_ignore_ascii_case(name))
    });
    if (by_name || declared || runbook_secret::contains_secret(value)) && !value.is_empty() {
        let source = Source::Vendor {
            what: format!("header {lower} of {label}"),
        };
        return Dynamic::from(Secret::new(value, source));
    }
    value.to_string().into()
}

/// Whether an answer's field is a credential by its name and its value, undeclared: a key
/// an API just created (`api_key`, `client_secret`, `password`) came back as text when the
/// script forgot `secrets:`, and went to the journal, the stream and the evidence (hostile
/// review). A value shaped like a name ("Bearer", "read-only") stays text, as do a list's
/// paging tokens (`next_token`, `cursor`), which are sent back as they are.
fn credential_by_name(key: &str, text: &str) -> bool {
    // camelCase as snake_case: `tokenId`, `secretExpiresAt` are an id and a time, as
    // `token_id` and `secret_expires_at` are (a second reading: made Secrets, an undo's
    // `${r.json.tokenId}` in a URL failed mid-rollback).
    let mut snake = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.extend(c.to_lowercase());
    }
    let paging = ["next", "page", "cursor", "continuation", "sync", "etag"];
    // A time (`PasswordLastUsed: 2026-12-01T10:00:00Z`) is no credential.
    let time = text.len() >= 10
        && text.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    // A URL with a password (before its host, or named in its query), or a connection
    // string with one (`Server=x;Password=...`), is a credential under any name (Neon's
    // `connection_uri`).
    if runbook_secret::url_has_password(text)
        || url_query_credential(text)
        || connection_string_password(text)
    {
        return true;
    }
    // A webhook's or a DSN's URL is its credential; a link of an API (`hooks_url`,
    // `access_tokens_url`, `refresh_url`) is not (a second reading: made Secrets, a
    // runbook could not follow them).
    let webhook = (snake.contains("webhook") || snake.contains("dsn"))
        && (snake.ends_with("_url") || !crate::text::names_a_setting(&snake))
        && crate::text::is_url(text);
    let named = crate::text::credential_like(&snake) || credential_answer_name(&snake) || webhook;
    named
        && !paging.iter().any(|w| snake.contains(w))
        && !time
        && !crate::text::names_something(text)
}

/// The name a field is judged by: its key; for a bare `url` or `uri`, its parent's and its
/// own (Slack's OAuth answer gives a webhook as `incoming_webhook.url`).
fn judged_name(path: &str, key: &str) -> String {
    match path.rsplit('.').nth(1) {
        Some(parent) if matches!(key, "url" | "uri") => format!("{parent}_{key}"),
        _ => key.to_string(),
    }
}

/// Names, beyond a credential's own (`credential_like`), under which answers hand out
/// credentials: a session's, a JWT pair's (`access`, `refresh`), a passphrase, a salt, a
/// signature, a DSN or a connection string. Not a setting about one (`access_key_id`,
/// `session_expires_at`).
fn credential_answer_name(snake: &str) -> bool {
    const WORDS: &[&str] = &[
        "jwt",
        "access",
        "refresh",
        "cookie",
        "session",
        "salt",
        "passphrase",
        "signature",
        "dsn",
    ];
    let connection = [
        "connection_str",
        "connection_uri",
        "connection_url",
        "conn_str",
    ]
    .iter()
    .any(|w| snake.contains(w));
    connection
        || snake.split('_').any(|w| WORDS.contains(&w)) && !crate::text::names_a_setting(snake)
}

/// Whether `text` is a connection string (`key=value;` pairs) that holds a password.
fn connection_string_password(text: &str) -> bool {
    const KEYS: &[&str] = &["password", "pwd", "accountkey", "sharedaccesskey"];
    text.contains(';')
        && text.split(';').any(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                KEYS.contains(&k.trim().to_ascii_lowercase().as_str()) && !v.trim().is_empty()
            })
        })
}

/// How a response's fields become Secrets: the paths the script declared, the vendor's
/// credential fields, a field named and shaped as a credential (`credential_by_name`), and
/// any string that holds an already registered secret (a vendor echoing a key back must
/// not launder it into plain text).
struct Wrap<'a> {
    declared: &'a [String],
    vendor: CredentialFields,
    masking: &'a crate::plan::Masking,
    label: &'a str,
    /// Set once a field is made a Secret.
    wrapped: std::cell::Cell<bool>,
    /// Set once a field the script declared is made a Secret.
    hit: std::cell::Cell<bool>,
}

impl Wrap<'_> {
    /// Whether the script declared `path` secret, or a field it lies under (`credentials`
    /// covers `credentials.secret` and `credentials.pin`).
    fn declared(&self, path: &str) -> bool {
        self.declared.iter().any(|p| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// Registers `text` at `path` (under `key`) when it comes back as a credential by where
    /// it is (declared, or a vendor's credential field), as `secret` would.
    fn register(&self, path: &str, key: &str, text: &str) {
        let credential = if self.declared(path) {
            true
        } else if self.vendor == CredentialFields::ConfigVars && self.vendor.holds(path, key) {
            !self.masking.is_plain(key, text) && self.masking.is_secret(key, text)
        } else {
            self.vendor.holds(path, key) || credential_by_name(&judged_name(path, key), text)
        };
        if credential {
            runbook_secret::register(text);
        }
    }

    /// The Secret the string `text` at `path` (under `key`) comes back as, if any.
    fn secret(&self, path: &str, key: &str, text: &str) -> Option<Secret> {
        let source = || Source::Vendor {
            what: format!("field {path} of {}", self.label),
        };
        let declared = self.declared(path);
        let secret = if declared {
            self.hit.set(true);
            Secret::new(text, source())
        } else if self.vendor == CredentialFields::ConfigVars && self.vendor.holds(path, key) {
            // Config vars mix settings with credentials: judged as `heroku::config` judges
            // them, and only credentials join the redactor.
            if self.masking.is_plain(key, text) {
                return None;
            } else if self.masking.is_secret(key, text) {
                Secret::new(text, source())
            } else {
                Secret::from_bulk(key, text, source())
            }
        } else if self.vendor.holds(path, key)
            || runbook_secret::contains_secret(text)
            || credential_by_name(&judged_name(path, key), text)
        {
            Secret::new(text, source())
        } else {
            return None;
        };
        self.wrapped.set(true);
        Some(secret)
    }
}

/// Only the fields of a response value at `paths` (what `record:` keeps), nested as they
/// were; never a Secret. `()` when none is there.
fn only_paths(v: &Dynamic, paths: &[String]) -> Dynamic {
    fn insert(m: &mut Map, parts: &[&str], v: Dynamic) {
        match parts {
            [last] => {
                m.insert((*last).into(), v);
            }
            [head, rest @ ..] => {
                let mut child = m
                    .get(*head)
                    .and_then(|c| c.read_lock::<Map>().map(|x| x.clone()))
                    .unwrap_or_default();
                insert(&mut child, rest, v);
                m.insert((*head).into(), child.into());
            }
            [] => {}
        }
    }
    let mut out = Map::new();
    for path in paths {
        let found = value::at_path(v, path).filter(|a| !a.is_unit() && !a.is::<Secret>());
        if let Some(found) = found {
            let parts: Vec<&str> = path.split('.').collect();
            insert(&mut out, &parts, found);
        }
    }
    if out.is_empty() {
        Dynamic::UNIT
    } else {
        out.into()
    }
}

/// Registers every field of `v` that comes back as a credential by its path (declared, or
/// the vendor's), before any field is judged by whether it holds a registered secret.
fn register_credentials(v: &serde_json::Value, path: &str, wrap: &Wrap, key: &str) {
    match v {
        serde_json::Value::String(text) => wrap.register(path, key, text),
        // A number is a credential only where the script declared it (a PIN): by its name,
        // `token_expires_in: 86400` is not one (a second reading).
        serde_json::Value::Number(n) if wrap.declared(path) => {
            wrap.register(path, key, &n.to_string())
        }
        serde_json::Value::Number(n) if wrap.vendor.holds(path, key) => {
            wrap.register(path, key, &n.to_string())
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                register_credentials(x, &child_path(path, &i.to_string()), wrap, key);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                register_credentials(x, &child_path(path, k), wrap, k);
            }
        }
        _ => {}
    }
}

/// The path of field `k` under `path`.
fn child_path(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// A JSON response as rhai, credential fields as Secrets (see `Wrap`). In `v`, each field
/// made a Secret is replaced by its mask: what the raw body may show.
fn response_json(v: &mut serde_json::Value, path: &str, wrap: &Wrap, key: &str) -> Dynamic {
    // A declared field may be a number (a PIN): a Secret of its text, as a string would be.
    let text = match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if wrap.declared(path) => Some(n.to_string()),
        _ => None,
    };
    if let Some(secret) = text.and_then(|text| wrap.secret(path, key, &text)) {
        *v = serde_json::Value::String(secret.masked());
        return Dynamic::from(secret);
    }
    let child = |k: &str| child_path(path, k);
    match v {
        serde_json::Value::Array(a) => a
            .iter_mut()
            .enumerate()
            .map(|(i, x)| response_json(x, &child(&i.to_string()), wrap, key))
            .collect::<Array>()
            .into(),
        serde_json::Value::Object(o) => o
            .iter_mut()
            .map(|(k, x)| (k.as_str().into(), response_json(x, &child(k), wrap, k)))
            .collect::<Map>()
            .into(),
        other => value::from_json(other),
    }
}

/// What a dry-run write returns: a placeholder whose declared secret fields are dry-run
/// Secrets, so the rest of the step (storing the new key) can be planned too.
fn dry_run_response(function: &str, secrets: &[String]) -> Dynamic {
    fn nest(origin: &str, paths: &[Vec<&str>], what: &str) -> Dynamic {
        let mut fields: BTreeMap<String, Dynamic> = BTreeMap::new();
        let mut heads: Vec<&str> = paths.iter().filter_map(|p| p.first().copied()).collect();
        heads.dedup();
        for head in heads {
            let rest: Vec<Vec<&str>> = paths
                .iter()
                .filter(|p| p.first() == Some(&head))
                .map(|p| p[1..].to_vec())
                .collect();
            let value = if rest.iter().any(|r| r.is_empty()) {
                Dynamic::from(dry_run_secret(what))
            } else {
                nest(&format!("{origin}.{head}"), &rest, what)
            };
            fields.insert(head.to_string(), value);
        }
        Placeholder::with_fields(origin, fields)
    }
    if secrets.is_empty() {
        return Placeholder::of(function);
    }
    // Under `json` and `xml` alike: the script reads whichever its vendor answers in.
    let mut paths: Vec<Vec<&str>> = secrets
        .iter()
        .flat_map(|p| {
            ["json", "xml"]
                .into_iter()
                .map(move |top| std::iter::once(top).chain(p.split('.')).collect())
        })
        .collect();
    paths.sort();
    nest(function, &paths, function)
}

/// True when a value holds a Secret that only a skipped dry-run write produced.
fn holds_dry_run_secret(v: &Dynamic) -> bool {
    if let Some(s) = v.read_lock::<Secret>() {
        return is_dry_run_secret(&s);
    }
    if let Some(a) = v.read_lock::<Array>() {
        return a.iter().any(holds_dry_run_secret);
    }
    if let Some(m) = v.read_lock::<Map>() {
        return m.values().any(holds_dry_run_secret);
    }
    false
}

/// Refuses a request to a host the runbook did not declare, before anything is sent.
fn check_egress(h: &RunContext, url: &str, function: &str) -> R<()> {
    let url = value::plain_string(url, "the URL")?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        throw(
            "usage",
            format!(
                "{function}: bad URL '{}': {e}",
                // Masked first: a Secret URL cut short is no longer matched whole, and
                // its first 200 characters were shown (hostile review).
                crate::text::truncate(&runbook_secret::redact(&url), 200)
            ),
            None,
        )
    })?;
    let egress = &h.policy().egress;
    if egress.allows(&parsed) {
        return Ok(());
    }
    let declared = if egress.hosts().is_empty() {
        "it declares none".to_string()
    } else {
        format!("it declares {}", egress.hosts().join(", "))
    };
    // A URL held as a Secret (a webhook's) may carry its credential in its host
    // (`https://eo4f….m.pipedream.net/`): the host is not shown (hostile review: it went to
    // the screen, the journal and the audit log).
    if runbook_secret::contains_secret(&url) {
        return Err(throw(
            "egress",
            format!("{function}: the host of a URL held as a Secret is not in this runbook's egress ({declared}); nothing was sent"),
            Some("if the runbook should reach it, declare that host: runbook(#{ ..., egress: [\"HOST\"] }), or \"param:NAME\" for a host the operator gives (the host is not shown here: the URL is a credential)".into()),
        ));
    }
    let host = crate::plan::egress::authority(&parsed).unwrap_or_else(|| "(no host)".into());
    Err(throw(
        "egress",
        format!(
            "{function}: {} is not in this runbook's egress ({declared}); nothing was sent",
            crate::text::truncate(&host, 200)
        ),
        Some(format!(
            "if the runbook should reach it, declare it: runbook(#{{ ..., egress: [\"{}\"] }}), or \"param:NAME\" for a host the operator gives",
            crate::text::truncate(&host, 200)
        )),
    ))
}

/// `read_only: true` on a POST (or PUT, PATCH) that only reads: many vendors' search and
/// verify endpoints. It is then a read: not journalled as a write, not asked about at a
/// production REPL, retried like a GET, and run (without its body) under `--dry-run`.
fn read_only(opts: &Map, method: &Method, function: &str) -> R<bool> {
    let yes = value::opt_flag(opts, "read_only", function)?;
    if yes && *method == Method::DELETE {
        return Err(throw(
            "usage",
            format!("{function}: a DELETE is never read-only"),
            Some(
                "use http::get, or http::post(..., #{ read_only: true }) for a POST that reads"
                    .into(),
            ),
        ));
    }
    Ok(yes)
}

fn call(h: &RunContext, method: Method, effect: Effect, url: &str, opts: Map) -> R<Dynamic> {
    let function = format!("http::{}", method.as_str().to_lowercase());
    let effect = if read_only(&opts, &method, &function)? {
        Effect::Read
    } else {
        effect
    };
    check_egress(h, url, &function)?;
    let secrets = secret_paths(&opts, &function)?;
    let record = record_paths(&opts, &function, &secrets)?;
    let kept = record.clone();
    let reach = changes(&opts, &function)?;
    if reach.is_some() && effect == Effect::Read {
        return Err(throw(
            "usage",
            format!("{function}: changes is for a write: a read changes nothing"),
            Some(
                "drop `changes` here; it says what a POST, PUT, PATCH or DELETE may change".into(),
            ),
        ));
    }
    let opts_value = Dynamic::from_map(opts.clone());
    if effect == Effect::Read
        && (holds_dry_run_secret(&opts_value)
            || (h.dry_run()
                && (url.contains(super::placeholder::MARKER)
                    || super::placeholder::holds_placeholder(&opts_value))))
    {
        // The credential or the id does not exist: sending it would only earn a 401 or a
        // 404, or read something else than the run would.
        h.require_step(&function)?;
        h.say().progress(format!(
            "    [dry-run] not sent: {method} {url} uses a value only a skipped write would produce"
        ));
        return Ok(dry_run_response(&function, &secrets));
    }
    // A dry run reads, to plan; it never sends a body or a Secret outside the credential
    // that authenticates the read (a GET with a JSON body was sent before).
    if effect == Effect::Read && h.dry_run() {
        let carries_body = opts.contains_key("json") || opts.contains_key("form");
        let secret_in_query = opts
            .get("query")
            .and_then(|q| {
                q.read_lock::<Map>()
                    .map(|m| m.values().any(|v| v.is::<Secret>()))
            })
            .unwrap_or(false);
        if carries_body || secret_in_query {
            h.require_step(&function)?;
            h.say().progress(format!(
                "    [dry-run] not sent: {method} {url} carries {}",
                if carries_body {
                    "a body"
                } else {
                    "a Secret in its query"
                }
            ));
            return Ok(dry_run_response(&function, &secrets));
        }
    }
    let req = build(method.clone(), url, &opts, &function)?;
    let run = || -> R<Dynamic> {
        let v = h.vendors()?;
        // The URL as the script wrote it: the query built from `query:` may hold a Secret's
        // value, and the label names Secrets' sources and spinners.
        let label = format!("{} {}", req.method, url);
        let vendor = v.config().credential_fields(&req.url);
        let resp = h.block(&label, async move { v.transport().send(req).await })?;
        let mut m = Map::new();
        m.insert("status".into(), (resp.status as i64).into());
        let text = resp.text();
        let wrap = Wrap {
            declared: &secrets,
            vendor,
            masking: &h.policy().masking,
            label: &label,
            wrapped: std::cell::Cell::new(false),
            hit: std::cell::Cell::new(false),
        };
        let mut parsed = serde_json::from_str::<serde_json::Value>(&text).ok();
        // An XML answer (AWS's query APIs), parsed the same way: `secrets` paths name its
        // fields (`CreateAccessKeyResponse.CreateAccessKeyResult.AccessKey.SecretAccessKey`).
        let mut tree = if parsed.is_none() && text.trim_start().starts_with('<') {
            if xml_depth(&text) > MAX_XML_DEPTH {
                let mut m = crate::value::error_map(
                    "runbook::limit::xml_depth",
                    format!(
                        "the response of {label} is XML nested deeper than {MAX_XML_DEPTH} levels; it is not read"
                    ),
                    Some("no vendor API answers this deep: check the endpoint (`.status` and `.body` are not kept for such an answer)".into()),
                );
                // A write was answered, and its answer not read: it may have applied.
                if effect != Effect::Read {
                    if let Some(m) = m.write_lock::<Map>().as_deref_mut() {
                        m.insert("maybe_applied".into(), true.into());
                    }
                }
                return Err(rhai::EvalAltResult::ErrorRuntime(m, rhai::Position::NONE).into());
            }
            xml_to_json(&text)
        } else {
            None
        };
        // First, every credential field of the answer joins the redactor: a header or a
        // field before it that quotes it (a connection URI ahead of its password) is then
        // judged knowing it (before, it stayed plain text, and a cut of it printed a piece).
        // Always: a field judged a credential by its name (`credential_by_name`) is one too.
        for t in parsed.iter().chain(tree.iter()) {
            register_credentials(t, "", &wrap, "");
        }
        let headers: Map = resp
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().into(),
                    header_value(k.as_str(), v.to_str().unwrap_or(""), &secrets, &label),
                )
            })
            .collect();
        m.insert("headers".into(), headers.into());
        // An earlier attempt's answer was lost: this answer does not say what that one did.
        m.insert("maybe_applied".into(), resp.earlier_lost.into());
        let json = parsed
            .as_mut()
            .map(|j| response_json(j, "", &wrap, ""))
            .unwrap_or(Dynamic::UNIT);
        let xml = tree
            .as_mut()
            .map(|x| response_json(x, "", &wrap, ""))
            .unwrap_or(Dynamic::UNIT);
        // The raw body keeps no copy a script could pass on. A JSON answer whose fields were
        // made Secrets is the JSON with each masked: an opaque config var is not known to the
        // redactor. Otherwise the secret fields are registered by now (as is any secret the
        // vendor echoed back).
        let body = match parsed {
            Some(masked) if wrap.wrapped.get() => {
                runbook_secret::redact(&masked.to_string()).into_owned()
            }
            _ if secrets.is_empty()
                && vendor == CredentialFields::None
                && !runbook_secret::contains_secret(&text) =>
            {
                text
            }
            _ => runbook_secret::redact(&text).into_owned(),
        };
        // The script said the answer holds a credential and none of the fields it named is
        // there (a typo, another shape, a body that is not JSON): the credential may be
        // anywhere in it, so a success's body and fields are not shown. An error's are (they
        // say what went wrong, and hold no new credential).
        let in_body = secrets.iter().any(|p| !p.starts_with("headers."));
        let missed = in_body && !wrap.hit.get() && (200..300).contains(&resp.status);
        // The fields `record:` keeps (ids, never secrets) stay: a create whose credential
        // was not where the script said still names what it made, for its undo.
        let (body, json, xml) = if missed {
            (
                format!(
                    "(not shown: none of the fields declared secret ({}) is in this answer, so the credential may be elsewhere in it)",
                    secrets.join(", ")
                ),
                only_paths(&json, &kept),
                only_paths(&xml, &kept),
            )
        } else {
            (body, json, xml)
        };
        m.insert("body".into(), body.into());
        m.insert("json".into(), json);
        m.insert("xml".into(), xml);
        Ok(m.into())
    };
    if effect == Effect::Read {
        h.require_step(&function)?;
        return run();
    }
    let detail = serde_json::json!({"url": url});
    // `what` names the write where the URL alone does not (a query API's one endpoint).
    let target = match opts.get("what") {
        Some(w) => format!(
            "{method} {url} ({})",
            value::plain_string(&w.to_string(), "what")?
        ),
        None => format!("{method} {url}"),
    };
    // A 4xx or 5xx answer is the vendor refusing: nothing to undo.
    let result = h
        .writes()
        .judged_by(answered)
        .recording(record)
        .reaching(reach)
        .mutate(&function, effect, &target, detail, run)?;
    if h.dry_run() {
        return Ok(dry_run_response(&function, &secrets));
    }
    Ok(result)
}

/// A write answered with `status`: a 4xx is the vendor refusing (nothing to undo); a 5xx,
/// or any answer after an attempt whose answer was lost, may have applied.
fn answered(v: &Dynamic) -> WriteOutcome {
    let Some(m) = v.read_lock::<Map>() else {
        return WriteOutcome::Failed;
    };
    let status = m.get("status").and_then(|s| s.as_int().ok()).unwrap_or(0);
    let lost = m
        .get("maybe_applied")
        .and_then(|b| b.as_bool().ok())
        .unwrap_or(false);
    if (200..400).contains(&status) {
        WriteOutcome::Applied
    } else if lost || super::writes::server_error(m.get("status")) {
        WriteOutcome::Unknown
    } else {
        WriteOutcome::Failed
    }
}

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module("http");
    let verbs = [
        ("get", Method::GET, Effect::Read),
        ("post", Method::POST, Effect::Write),
        ("put", Method::PUT, Effect::Write),
        ("patch", Method::PATCH, Effect::Write),
        ("delete", Method::DELETE, Effect::Destructive),
    ];
    for (name, method, effect) in verbs {
        let doc = format!(
            "{} a URL. Options: #{{headers (values may be Secrets), bearer (a Secret: Authorization: Bearer),\nbasic (#{{user, password: Secret}}), json (a body; may hold Secrets), form (fields sent\nurl-encoded; values may be Secrets), query (values may be Secrets), secrets (response\nfield paths that are credentials, e.g. [\"api_key\"]: they come back as Secrets, and so does\nevery value under one; a 2xx answer holding none of them shows neither its body nor its fields), idempotent\n(true: repeating this write is safe), record (a write's answer fields to keep with its outcome in\nthe journal, e.g. [\"api_key_id\"]: the id of what it created, so rollback can delete it after a\ncrash; never a secret), read_only (true: a POST, PUT or PATCH that only reads, such as a search:\nnot journalled as a write, retried like a GET), aws (#{{access_key_id, secret_access_key: Secret,
session_token, region, service}}: AWS Signature Version 4), what (names the write in the journal,
the audit and the run's summary, e.g. \"CreateAccessKey ci-deployer\"), changes (a write: the vendors, of
postmark, infisical, heroku and github, whose answers it may change, e.g. [\"postmark\"] for a call
that sends through Postmark; without it, any: run::together reads again a read sent before it)}}. Returns #{{status, headers, body,
json, xml, maybe_applied}} for any status (maybe_applied: a retry's answer after an attempt whose answer was lost, which may have applied) (xml: an XML answer parsed into maps, `member` items as lists;\nheaders that carry a credential by name, or declared as `secrets: [\"headers.NAME\"]`, are Secrets).\nGET (and a read_only call) is retried on 429/5xx and lost connections; a write only with\nidempotent: true or an Idempotency-Key header, honouring Retry-After; any other write never. Plain http:// is refused except to loopback.",
            method.as_str()
        );
        // A URL that is itself the credential (a chat webhook's secret path) is a Secret:
        // sent as written, registered with the redactor, so the journal, the audit trail
        // and every label show it masked. As text it was in clear in all of them.
        let overloads: [(&[&str], String); 4] = [
            (&["url: string", "options: Map"], doc),
            (&["url: string"], format!("{} a URL without options.", method.as_str())),
            (
                &["url: Secret", "options: Map"],
                format!("{} a URL that is a credential (a webhook's secret path), with options: sent as written, shown masked.", method.as_str()),
            ),
            (
                &["url: Secret"],
                format!("{} a URL that is a credential, without options.", method.as_str()),
            ),
        ];
        for (i, (params, doc)) in overloads.into_iter().enumerate() {
            let mt = method.clone();
            match i {
                0 => m.add(
                    name,
                    effect,
                    params,
                    "Map",
                    &doc,
                    move |c: NativeCallContext, u: &str, o: Map| send_verb(&c, &mt, effect, u, o),
                ),
                1 => m.add(
                    name,
                    effect,
                    params,
                    "Map",
                    &doc,
                    move |c: NativeCallContext, u: &str| send_verb(&c, &mt, effect, u, Map::new()),
                ),
                2 => m.add(
                    name,
                    effect,
                    params,
                    "Map",
                    &doc,
                    move |c: NativeCallContext, u: Secret, o: Map| {
                        register_capability(&u);
                        send_verb(&c, &mt, effect, u.expose_to_send(), o)
                    },
                ),
                _ => m.add(
                    name,
                    effect,
                    params,
                    "Map",
                    &doc,
                    move |c: NativeCallContext, u: Secret| {
                        register_capability(&u);
                        send_verb(&c, &mt, effect, u.expose_to_send(), Map::new())
                    },
                ),
            };
            if effect.mutates() {
                m.repeat(Repeat::PerCall);
            }
        }
    }
    m.finish();
}

/// One of the verbs, called from a script.
fn send_verb(
    c: &NativeCallContext,
    method: &Method,
    effect: Effect,
    url: &str,
    opts: Map,
) -> R<Dynamic> {
    let function = format!("http::{}", method.as_str().to_lowercase());
    value::at(
        c,
        with_run(c, &function, |h| call(h, method.clone(), effect, url, opts)),
    )
}

/// A URL given as a Secret is a capability: its path and query (what makes it secret) are
/// masked too wherever they appear alone, as in a log line or an echo of the request. A
/// short path (`/api`, before a query that holds the secret) is no secret, and masked it
/// would hide every label naming it.
/// Each part long enough to be a credential is masked on its own too: a vendor echoes one
/// (a Discord webhook's token as `"last"`, an Azure function's `?code=` value) without the
/// rest (hostile review); so is a host's first label of that length with digits in it
/// (`eo4f8a2c9b1d7e3f.m.pipedream.net`).
fn register_capability(url: &Secret) {
    if let Ok(parsed) = reqwest::Url::parse(url.expose_to_send()) {
        let path = parsed.path();
        if path.len() >= CAPABILITY_PATH {
            runbook_secret::register(path);
        }
        for segment in path.split('/').filter(|s| random_part(s)) {
            runbook_secret::register(segment);
        }
        if let Some(query) = parsed.query() {
            runbook_secret::register(query);
        }
        for (_, value) in parsed.query_pairs() {
            if random_part(&value) {
                runbook_secret::register(&value);
            }
        }
        if let Some(label) = parsed.host_str().and_then(|h| h.split('.').next()) {
            if random_part(label) {
                runbook_secret::register(label);
            }
        }
    }
}

/// How long a capability URL's path must be to be taken for its secret part (Slack's
/// `/services/T…/B…/…` is over 40).
const CAPABILITY_PATH: usize = 16;

/// Whether one part of a capability URL (a path segment, a query value, a host's first
/// label) is taken for a credential on its own: 16 characters or more (Slack's webhook
/// secret is 24, Discord's token 68, an Azure function key 56), letters and digits mixed,
/// not shaped like a name. A repository's or a route's name (`infrastructure-live`) is
/// not: registered, every later answer naming it became a Secret (a second reading).
fn random_part(part: &str) -> bool {
    part.len() >= 16
        && part.chars().any(|c| c.is_ascii_digit())
        && part.chars().any(|c| c.is_ascii_alphabetic())
        && !crate::text::names_something(part)
}

#[cfg(test)]
mod tests {
    use super::xml_to_json;
    use serde_json::json;

    #[test]
    fn xml_answers_become_maps_with_member_lists() {
        let xml = r#"<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListAccessKeysResult>
    <AccessKeyMetadata>
      <member><AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status></member>
    </AccessKeyMetadata>
    <IsTruncated>false</IsTruncated>
  </ListAccessKeysResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</ListAccessKeysResponse>"#;
        assert_eq!(
            xml_to_json(xml).unwrap(),
            json!({"ListAccessKeysResponse": {
                "ListAccessKeysResult": {
                    "AccessKeyMetadata": [{"AccessKeyId": "AKIA1", "Status": "Active"}],
                    "IsTruncated": "false",
                },
                "ResponseMetadata": {"RequestId": "r-1"},
            }})
        );
        assert_eq!(
            xml_to_json("<a><b>1</b><b>2</b><c/></a>").unwrap(),
            json!({"a": {"b": ["1", "2"], "c": ""}})
        );
        assert!(xml_to_json("not xml").is_none());
        assert_eq!(
            super::xml_depth("<?xml version=\"1.0\"?><a><b>1</b><c/><d><e>x</e></d></a>"),
            3
        );
        assert_eq!(super::xml_depth(&"<a>".repeat(200_000)), 200_000);
    }
}
