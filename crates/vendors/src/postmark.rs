//! Postmark server API client (`GET /server`, `POST /email`, `POST /email/batch`, and
//! `GET /messages/outbound/{id}/details` to confirm a send was delivered).

use super::error::{ErrorKind, VendorCode, VendorError};
use super::transport::{ErrorDetail, RawResponse, Request, Transport};
use reqwest::Method;
use runbook_secret::{Secret, Source};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

const VENDOR: &str = crate::Vendor::Postmark.name();
const TOKEN_HEADER: &str = "X-Postmark-Server-Token";

/// The server a server token belongs to (`GET /server`), field names as Postmark sends them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Server {
    #[serde(rename = "ID")]
    pub id: i64,
    pub name: String,
    /// Every token of the server; secrets, so they never print.
    #[serde(deserialize_with = "tokens_as_secrets", default)]
    pub api_tokens: Vec<Secret>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub color: String,
    #[serde(default)]
    pub smtp_api_activated: bool,
    #[serde(default)]
    pub raw_email_enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub delivery_type: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub server_link: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_address: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_hook_url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub bounce_hook_url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub open_hook_url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub delivery_hook_url: String,
    #[serde(default)]
    pub post_first_open_only: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_domain: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_hash: String,
    #[serde(default)]
    pub inbound_spam_threshold: i64,
    #[serde(default)]
    pub track_opens: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub track_links: String,
    #[serde(default)]
    pub include_bounce_content_in_hook: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub click_hook_url: String,
    #[serde(default)]
    pub enable_smtp_api_error_hooks: bool,
}

/// One email for `POST /email`; unset fields are left out of the JSON.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Email {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_opens: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_links: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_stream: Option<String>,
}

/// Postmark's answer to a send (`SendEmailResponse`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SendResult {
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub submitted_at: String,
    #[serde(rename = "MessageID", default)]
    pub message_id: String,
    pub error_code: i64,
    pub message: String,
}

/// A sent message once Postmark has processed it (`GET /messages/outbound/{id}/details`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboundMessage {
    #[serde(rename = "MessageID")]
    pub message_id: String,
    /// `Sent` once processed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// What happened to each recipient: `Delivered`, `Bounced`, `Transient`...
    #[serde(default)]
    pub message_events: Vec<MessageEvent>,
}

/// One event of a sent message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageEvent {
    #[serde(default)]
    pub recipient: String,
    #[serde(rename = "Type", default)]
    pub kind: String,
}

impl OutboundMessage {
    /// The recipients a `Bounced` event names.
    pub fn bounced(&self) -> Vec<&str> {
        self.message_events
            .iter()
            .filter(|e| e.kind == "Bounced")
            .map(|e| e.recipient.as_str())
            .collect()
    }
}

/// Client for Postmark's server-token API.
#[derive(Debug, Clone)]
pub struct PostmarkClient {
    transport: Transport,
    base: String,
}

impl PostmarkClient {
    pub fn new(transport: Transport, base: impl Into<String>) -> Self {
        PostmarkClient {
            transport,
            base: base.into().trim_end_matches('/').to_string(),
        }
    }

    fn request(&self, method: Method, path: &str, token: &Secret) -> Request {
        Request::new(VENDOR, method, format!("{}{path}", self.base))
            .route(path)
            .header("Accept", "application/json")
            .header(TOKEN_HEADER, token)
    }

    /// A send: `body` POSTed as JSON to `path`. Never retried: a retry could send twice.
    fn send_request(
        &self,
        path: &str,
        token: &Secret,
        body: &(impl Serialize + ?Sized),
    ) -> Result<Request, VendorError> {
        let body = serde_json::to_value(body).map_err(|e| {
            VendorError::new(VENDOR, "POST", path, ErrorKind::Validation, e.to_string())
        })?;
        Ok(self
            .request(Method::POST, path, token)
            .header("Content-Type", "application/json")
            .json(body)
            .idempotent(false))
    }

    /// `GET /server`: the server this token belongs to (proves the token works).
    pub async fn server(&self, token: &Secret) -> Result<Server, VendorError> {
        let req = self.request(Method::GET, "/server", token);
        self.transport.send_json(req, parse_error).await
    }

    /// `POST /email`: sends one email. Never retried: a retry could send it twice.
    pub async fn send_email(
        &self,
        token: &Secret,
        email: &Email,
    ) -> Result<SendResult, VendorError> {
        let req = self.send_request("/email", token, email)?;
        let result: SendResult = self.transport.send_json(req.clone(), parse_error).await?;
        if result.error_code != 0 {
            return Err(req
                .error(ErrorKind::from_code(result.error_code), &result.message)
                .with_status(200)
                .with_code(Some(VendorCode::Number(result.error_code))));
        }
        Ok(result)
    }

    /// `GET /messages/outbound/{id}/details`: the message once Postmark has processed it;
    /// `None` until then (Postmark answers 422 ErrorCode 701 "message not found" for a
    /// message it has not processed, or does not know).
    pub async fn outbound_message(
        &self,
        token: &Secret,
        message_id: &str,
    ) -> Result<Option<OutboundMessage>, VendorError> {
        let path = format!("/messages/outbound/{message_id}/details");
        let req = self
            .request(Method::GET, &path, token)
            .route("/messages/outbound/{id}/details");
        let resp = self.transport.send(req.clone()).await?;
        if resp.status == 422 && parse_error(&resp).code == Some(VendorCode::Number(701)) {
            return Ok(None);
        }
        if !resp.is_success() {
            return Err(crate::transport::status_error(&req, &resp, parse_error));
        }
        crate::transport::decode_json(&req, &resp).map(Some)
    }

    /// `POST /email/batch`: one result per email, failures included (HTTP 200 overall).
    pub async fn send_batch(
        &self,
        token: &Secret,
        emails: &[Email],
    ) -> Result<Vec<SendResult>, VendorError> {
        let req = self.send_request("/email/batch", token, emails)?;
        self.transport.send_json(req, parse_error).await
    }
}

trait FromPostmarkCode {
    fn from_code(code: i64) -> ErrorKind;
}

impl FromPostmarkCode for ErrorKind {
    fn from_code(code: i64) -> ErrorKind {
        match code {
            10 => ErrorKind::Unauthorized,
            12 => ErrorKind::NotFound,
            100 => ErrorKind::Server,
            _ => ErrorKind::Validation,
        }
    }
}

/// Reads `{"ErrorCode": n, "Message": "..."}`.
fn parse_error(resp: &RawResponse) -> ErrorDetail {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body {
        error_code: Option<i64>,
        message: Option<String>,
    }
    let body: Option<Body> = serde_json::from_slice(&resp.body).ok();
    let code = body.as_ref().and_then(|b| b.error_code);
    let hint = match (resp.status, code) {
        (401, _) | (_, Some(10)) => Some(
            "the server token was rejected: check it is a current token of this server (Postmark → Server → API Tokens)"
                .to_string(),
        ),
        (415, _) => Some("send Content-Type and Accept: application/json".to_string()),
        (_, Some(400)) | (_, Some(401)) => Some(
            "the From address is not a confirmed Sender Signature of the account (Postmark → Sender Signatures)"
                .to_string(),
        ),
        (_, Some(406)) => {
            Some("the recipient is marked inactive in Postmark; reactivate it or use another address".to_string())
        }
        _ => None,
    };
    ErrorDetail {
        code: code.map(VendorCode::Number),
        message: body.and_then(|b| b.message),
        // ErrorCode 10 is a token Postmark does not take, whatever the status it comes
        // with (its docs say 401; a client library's fixtures pair it with 422).
        kind: (code == Some(10)).then_some(ErrorKind::Unauthorized),
        hint,
    }
}

fn tokens_as_secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    let tokens: Option<Vec<String>> = Option::deserialize(d)?;
    Ok(tokens
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            Secret::new(
                t,
                Source::Vendor {
                    what: "Postmark server ApiTokens".into(),
                },
            )
        })
        .collect())
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::start;
    use runbook_sandbox::{FaultRule, Scenario};

    /// ErrorCode 10 is a token Postmark does not take, whatever status it comes with: a
    /// 422 with it was an ordinary error, so `token_status` failed where it should say the
    /// token is refused (the revoke's check and rollback's "restores" broke on it).
    #[test]
    fn error_code_10_is_a_refused_token_whatever_its_status() {
        for status in [401, 422] {
            let resp = RawResponse {
                status,
                headers: Default::default(),
                body: br#"{"ErrorCode":10,"Message":"Bad or missing API token."}"#.to_vec(),
                attempts: 1,
                earlier_lost: false,
                not_waited: false,
            };
            assert_eq!(
                parse_error(&resp).kind,
                Some(ErrorKind::Unauthorized),
                "{status}"
            );
        }
        let other = RawResponse {
            status: 422,
            headers: Default::default(),
            body: br#"{"ErrorCode":300,"Message":"Invalid email request."}"#.to_vec(),
            attempts: 1,
            earlier_lost: false,
            not_waited: false,
        };
        assert_eq!(parse_error(&other).kind, None);
    }

    fn token(v: &str) -> Secret {
        Secret::new(v, Source::Literal)
    }

    fn email(to: &str) -> Email {
        Email {
            from: "noreply@raxx.app".into(),
            to: to.into(),
            subject: Some("rotation validation".into()),
            text_body: Some("hello".into()),
            ..Email::default()
        }
    }

    #[test]
    fn null_hook_urls_and_missing_fields_are_tolerated() {
        let s: Server = serde_json::from_value(serde_json::json!({
            "ID": 1, "Name": "n", "ApiTokens": ["tolerant-token-0001"],
            "InboundHookUrl": null, "BounceHookUrl": null, "Color": null
        }))
        .unwrap();
        assert_eq!((s.inbound_hook_url.as_str(), s.color.as_str()), ("", ""));
        assert_eq!(s.api_tokens.len(), 1);
    }

    /// Postmark processes a send asynchronously: the message is not found until then, then
    /// shows its delivery (or bounce) per recipient.
    #[tokio::test]
    async fn a_sent_message_is_confirmed_once_processed() {
        let mut pending = Scenario::default().with_postmark_token("pm-current-0001");
        pending.postmark.delivery_ms = 600_000;
        let (_sb, v) = start(pending).await;
        let pm = v.postmark();
        let t = token("pm-current-0001");
        let sent = pm.send_email(&t, &email("kris@example.com")).await.unwrap();
        assert!(pm
            .outbound_message(&t, &sent.message_id)
            .await
            .unwrap()
            .is_none());

        let mut done = Scenario::default().with_postmark_token("pm-current-0001");
        done.postmark.delivery_ms = 0;
        done.postmark.bounce = vec!["gone@example.com".into()];
        let (sb, v) = start(done).await;
        let pm = v.postmark();
        let sent = pm
            .send_email(&t, &email("kris@example.com, gone@example.com"))
            .await
            .unwrap();
        let m = pm
            .outbound_message(&t, &sent.message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "Sent");
        assert_eq!(m.bounced(), vec!["gone@example.com"]);
        assert_eq!(
            sb.count_requests(
                "postmark",
                "GET",
                &format!("/messages/outbound/{}/details", sent.message_id)
            ),
            1
        );
        let e = pm
            .outbound_message(&token("wrong"), &sent.message_id)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
    }

    #[tokio::test]
    async fn server_returns_the_tokens_server() {
        let (sb, v) = start(Scenario::default().with_postmark_token("pm-current-0001")).await;
        let s = v
            .postmark()
            .server(&token("pm-current-0001"))
            .await
            .unwrap();
        assert_eq!((s.id, s.name.as_str()), (4242, "raxx-prod"));
        assert_eq!(s.api_tokens.len(), 1);
        assert!(s.api_tokens.contains(&token("pm-current-0001")));
        assert!(!format!("{s:?}").contains("pm-current-0001"));
        assert_eq!(sb.count_requests("postmark", "GET", "/server"), 1);
    }

    #[tokio::test]
    async fn a_bad_token_is_unauthorized_with_errorcode_10() {
        let (_sb, v) = start(Scenario::default()).await;
        let e = v
            .postmark()
            .server(&token("not-a-token-0000"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.code(), Some(&VendorCode::Number(10)));
        assert!(e.message().starts_with("The Server Token you provided"));
        assert!(e
            .to_string()
            .starts_with("postmark GET /server → 401 Unauthorized: The Server Token"));
        assert!(e.to_string().ends_with("(ErrorCode 10)"));
        assert!(e.help_text().contains("API Tokens"));
    }

    #[tokio::test]
    async fn send_email_returns_a_message_id_and_is_counted() {
        let (sb, v) = start(Scenario::default().with_postmark_token("pm-send-0002")).await;
        let r = v
            .postmark()
            .send_email(&token("pm-send-0002"), &email("kris@moosequest.net"))
            .await
            .unwrap();
        assert_eq!((r.error_code, r.message.as_str()), (0, "OK"));
        assert_eq!(r.to, "kris@moosequest.net");
        assert!(uuid::Uuid::parse_str(&r.message_id).is_ok());
        let st = sb.state();
        assert_eq!(st["postmark"]["emails"]["count"], 1);
        assert_eq!(st["postmark"]["emails"]["by_token"]["pm-send-0002"], 1);
    }

    #[tokio::test]
    async fn invalid_emails_are_422_validation_with_errorcode_300() {
        let (_sb, v) = start(Scenario::default().with_postmark_token("pm-val-0003")).await;
        let e = v
            .postmark()
            .send_email(&token("pm-val-0003"), &email(""))
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Validation, Some(422)));
        assert_eq!(e.code(), Some(&VendorCode::Number(300)));
        let mut bad = email("x@y.z");
        bad.message_stream = Some("nope".into());
        let e = v
            .postmark()
            .send_email(&token("pm-val-0003"), &bad)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(&VendorCode::Number(1235)));
    }

    #[tokio::test]
    async fn batch_reports_each_message() {
        let (_sb, v) = start(Scenario::default().with_postmark_token("pm-batch-0004")).await;
        let r = v
            .postmark()
            .send_batch(&token("pm-batch-0004"), &[email("a@b.c"), email("")])
            .await
            .unwrap();
        assert_eq!(r[0].error_code, 0);
        assert_eq!(r[1].error_code, 300);
    }

    #[tokio::test]
    async fn send_email_is_not_retried_on_500() {
        let (sb, v) = start(Scenario::default().with_postmark_token("pm-noretry-0005")).await;
        sb.add_fault(FaultRule::parse("postmark:POST:/email=500:once").unwrap());
        let e = v
            .postmark()
            .send_email(&token("pm-noretry-0005"), &email("a@b.c"))
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Server, Some(500)));
        assert_eq!(sb.count_requests("postmark", "POST", "/email"), 1);
        assert_eq!(sb.state()["postmark"]["emails"]["count"], 0);
    }

    #[tokio::test]
    async fn a_dropped_send_is_a_connection_error_and_not_retried() {
        let (sb, v) = start(Scenario::default().with_postmark_token("pm-drop-0006")).await;
        sb.add_fault(FaultRule::parse("postmark:POST:/email=drop:once").unwrap());
        let e = v
            .postmark()
            .send_email(&token("pm-drop-0006"), &email("a@b.c"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(e.status(), None);
        assert_eq!(sb.count_requests("postmark", "POST", "/email"), 1);
    }

    #[tokio::test]
    async fn deleted_tokens_stop_working() {
        let (sb, v) = start(Scenario::default().with_postmark_token("pm-old-0007")).await;
        let new = sb.dashboard_generate_token("raxx-prod").unwrap();
        let s = v.postmark().server(&token(&new)).await.unwrap();
        assert_eq!(s.api_tokens.len(), 2);
        sb.dashboard_delete_token("raxx-prod", "pm-old-0007")
            .unwrap();
        let e = v
            .postmark()
            .server(&token("pm-old-0007"))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
    }
}
