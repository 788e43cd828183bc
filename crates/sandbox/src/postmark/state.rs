//! The Postmark simulator's data: servers with their tokens, accepted emails, and the checks
//! Postmark makes on a send.

use crate::scenario::{PostmarkScenario, ServerSpec};
use crate::world::{Mail, SendError};
use crate::{ts, SandboxError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(super) const MISSING_TOKEN: &str = "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token.";
pub(super) const BAD_TOKEN: &str = "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token.";

/// Postmark's test token: sends validate but are not delivered.
const TEST_TOKEN: &str = "POSTMARK_API_TEST";

/// One simulated server.
pub(super) struct PmServer {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) tokens: Vec<String>,
    deleted_tokens: Vec<String>,
    /// Names given at "Generate New" (token → name).
    pub(super) token_names: BTreeMap<String, String>,
    /// The token this sandbox generated last: the dashboard marks it.
    pub(super) newest: Option<String>,
    pub(super) settings: Map<String, Value>,
    pub(super) inbound_hash: String,
}

/// Why a `PUT /server` edit was refused, with the ErrorCode Postmark's API overview lists
/// for it ("API error codes", 600-611).
pub(super) enum InvalidEdit {
    /// The name is missing or blank (608).
    Name,
    /// Another server of the account has that name (603).
    NameExists,
    /// A colour outside Postmark's list (607).
    Color,
    /// A hook URL that is not an http(s) URL, or points at an internal address (606).
    WebhookUrl(String),
    /// `InboundSpamThreshold` outside 0-30 in steps of 5 (611).
    SpamThreshold,
    /// Nothing the edit could change (609).
    NoData,
    /// A setting of the wrong JSON type (402, as for malformed JSON).
    Type(String),
    /// A value outside the setting's choices (403, invalid request field).
    Value(String),
}

impl InvalidEdit {
    /// Postmark's ErrorCode and message.
    pub(super) fn code_and_message(&self) -> (i64, String) {
        match self {
            InvalidEdit::Name => (608, "Server name missing or invalid.".into()),
            InvalidEdit::NameExists => (603, "Server name already exists.".into()),
            InvalidEdit::Color => (
                607,
                "Invalid Server color. Use Purple, Blue, Turquoise, Green, Red, Orange, Yellow or Grey."
                    .into(),
            ),
            InvalidEdit::WebhookUrl(field) => (
                606,
                format!("Invalid webhook URL in '{field}': it is not a valid URL or it points at an internal IP range."),
            ),
            InvalidEdit::SpamThreshold => (
                611,
                "InboundSpamThreshold value is invalid. Use a number between 0 and 30 in increments of 5.".into(),
            ),
            InvalidEdit::NoData => (609, "No updated Server data received.".into()),
            InvalidEdit::Type(field) => (
                402,
                format!("Received invalid JSON input: '{field}' has the wrong type."),
            ),
            InvalidEdit::Value(field) => (403, format!("Invalid request field(s): {field}.")),
        }
    }
}

/// The hook URL settings `PUT /server` checks.
const HOOK_URLS: &[&str] = &[
    "InboundHookUrl",
    "BounceHookUrl",
    "OpenHookUrl",
    "DeliveryHookUrl",
    "ClickHookUrl",
];

/// A hook URL Postmark accepts: empty (no hook), or http(s) to a public host.
fn valid_hook_url(url: &str) -> bool {
    if url.is_empty() {
        return true;
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let internal = host == "localhost"
        || host.starts_with("127.")
        || host.starts_with("10.")
        || host.starts_with("192.168.")
        || host.starts_with("169.254.")
        || (16..=31).any(|n| host.starts_with(&format!("172.{n}.")));
    !host.is_empty() && !host.contains(' ') && !internal
}

/// A server's colours, as Postmark's current docs capitalise them.
pub(crate) const COLORS: &[&str] = &[
    "Purple",
    "Blue",
    "Turquoise",
    "Green",
    "Red",
    "Yellow",
    "Grey",
    "Orange",
];

/// Settings that take one of a few words.
const CHOICES: &[(&str, &[&str])] = &[(
    "TrackLinks",
    &["None", "HtmlAndText", "HtmlOnly", "TextOnly"],
)];

impl PmServer {
    /// Applies a `PUT /server` edit: the name and the known settings change; read-only and
    /// unknown fields are ignored. A field Postmark refuses stops the whole edit before
    /// anything changes; an edit with nothing to change is refused too.
    pub(super) fn edit(&mut self, edit: Map<String, Value>) -> Result<(), InvalidEdit> {
        if !edit
            .keys()
            .any(|k| k == "Name" || self.settings.contains_key(k))
        {
            return Err(InvalidEdit::NoData);
        }
        for (k, v) in &edit {
            if k == "Name" {
                match v.as_str() {
                    Some(n) if !n.trim().is_empty() => {}
                    _ => return Err(InvalidEdit::Name),
                }
                continue;
            }
            let Some(current) = self.settings.get(k) else {
                continue;
            };
            let same_type = matches!(
                (current, v),
                (Value::Bool(_), Value::Bool(_))
                    | (Value::String(_), Value::String(_))
                    | (Value::Number(_), Value::Number(_))
            );
            if !same_type {
                return Err(InvalidEdit::Type(k.clone()));
            }
            if k == "Color" && !v.as_str().is_some_and(|c| COLORS.contains(&c)) {
                return Err(InvalidEdit::Color);
            }
            if HOOK_URLS.contains(&k.as_str()) && !v.as_str().is_some_and(valid_hook_url) {
                return Err(InvalidEdit::WebhookUrl(k.clone()));
            }
            if k == "InboundSpamThreshold"
                && !v
                    .as_i64()
                    .is_some_and(|n| (0..=30).contains(&n) && n % 5 == 0)
            {
                return Err(InvalidEdit::SpamThreshold);
            }
            if let Some((_, choices)) = CHOICES.iter().find(|(name, _)| name == k) {
                if !v.as_str().is_some_and(|s| choices.contains(&s)) {
                    return Err(InvalidEdit::Value(k.clone()));
                }
            }
        }
        for (k, v) in edit {
            match k.as_str() {
                "Name" => {
                    if let Some(n) = v.as_str() {
                        self.name = n.to_string();
                    }
                }
                "ID" | "ApiTokens" | "ServerLink" | "InboundAddress" | "InboundHash"
                | "DeliveryType" => {}
                key if self.settings.contains_key(key) => {
                    self.settings.insert(k, v);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// One accepted email.
pub(super) struct PmMessage {
    pub(super) message_id: String,
    pub(super) token: String,
    pub(super) server: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) cc: String,
    pub(super) bcc: String,
    pub(super) subject: String,
    pub(super) tag: String,
    pub(super) stream: String,
    pub(super) text_body: String,
    pub(super) html_body: String,
    pub(super) via: String,
    pub(super) submitted_at: String,
    /// When Postmark has processed it: until then the message APIs do not show it.
    due: Instant,
    /// When it was processed (then it is listed, with its events).
    pub(super) processed_at: Option<String>,
}

impl PmMessage {
    /// Every address it goes to, bare and lower-cased.
    pub(super) fn recipients(&self) -> Vec<String> {
        [&self.to, &self.cc, &self.bcc]
            .iter()
            .flat_map(|f| f.split(','))
            .map(|r| bare_address(r).to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// A hard bounce Postmark recorded for one recipient of one message.
pub(super) struct PmBounce {
    pub(super) id: i64,
    pub(super) server: String,
    pub(super) message_id: String,
    pub(super) email: String,
    pub(super) from: String,
    pub(super) subject: String,
    pub(super) tag: String,
    pub(super) stream: String,
    pub(super) bounced_at: String,
    /// The recipient is suppressed (later sends to it are refused with ErrorCode 406).
    pub(super) inactive: bool,
}

pub(super) struct PostmarkState {
    pub(super) servers: Vec<PmServer>,
    pub(super) messages: Vec<PmMessage>,
    pub(super) bounces: Vec<PmBounce>,
    pub(super) token_limit: usize,
    senders: Senders,
    /// How long processing a message takes.
    delivery: Duration,
    /// Recipients whose mailbox hard-bounces.
    hard_bounces: Vec<String>,
    /// The largest page a list answers.
    pub(super) page_size: usize,
    /// The API's request pool, when the scenario sets one.
    pub(super) pool: Option<crate::ratelimit::Pool>,
}

/// Who may send and who may receive: the account's Sender Signatures and suppressions.
struct Senders {
    confirmed: Vec<String>,
    unconfirmed: Vec<String>,
    inactive: Vec<String>,
}

impl Senders {
    /// The ErrorCode Postmark answers for this sender and these recipients, if any.
    fn check(&self, from: &str, recipients: &[&str], suppressed: &[&str]) -> Result<(), SendError> {
        let address = bare_address(from).to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let signs = |list: &[String]| {
            list.iter().any(|s| {
                let s = s.to_ascii_lowercase();
                s == "*" || s == address || (!s.contains('@') && s == domain)
            })
        };
        if !signs(&self.confirmed) {
            if signs(&self.unconfirmed) {
                return Err(invalid(
                    401,
                    format!("The sender signature '{address}' has not been confirmed. Confirm it from the email Postmark sent, then retry."),
                ));
            }
            return Err(invalid(
                400,
                format!("The 'From' address you supplied ({address}) is not a Sender Signature on your account. Please add and confirm this address in order to be able to use it in the 'From' field of your messages."),
            ));
        }
        let inactive: Vec<String> = recipients
            .iter()
            .map(|r| bare_address(r).to_ascii_lowercase())
            .filter(|r| {
                self.inactive.iter().any(|i| i.eq_ignore_ascii_case(r))
                    || suppressed.iter().any(|i| i.eq_ignore_ascii_case(r))
            })
            .collect();
        if !inactive.is_empty() {
            return Err(invalid(
                406,
                format!("You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.", inactive.join(", ")),
            ));
        }
        Ok(())
    }
}

/// `Full Name <a@b.c>` → `a@b.c`.
pub(super) fn bare_address(text: &str) -> &str {
    let t = text.trim();
    match (t.rfind('<'), t.rfind('>')) {
        (Some(open), Some(close)) if open < close => t[open + 1..close].trim(),
        _ => t,
    }
}

impl PostmarkState {
    pub(super) fn from_scenario(s: &PostmarkScenario) -> Result<Self, SandboxError> {
        let mut servers = Vec::new();
        for (i, spec) in s.servers.iter().enumerate() {
            servers.push(new_server(spec, i, s.token_limit)?);
        }
        Ok(PostmarkState {
            servers,
            messages: Vec::new(),
            bounces: Vec::new(),
            token_limit: s.token_limit,
            delivery: Duration::from_millis(s.delivery_ms),
            hard_bounces: s.bounce.iter().map(|a| a.to_ascii_lowercase()).collect(),
            page_size: s.page_size.map_or(500, |n| (n as usize).clamp(1, 500)),
            pool: s.rate_limit.as_ref().map(crate::ratelimit::Pool::of),
            senders: Senders {
                confirmed: s.sender_signatures.clone(),
                unconfirmed: s.unconfirmed_signatures.clone(),
                inactive: s.inactive_recipients.clone(),
            },
        })
    }

    /// Processes every message whose time has come: it is delivered, or hard-bounces for a
    /// recipient the scenario names, which records a bounce and suppresses the recipient.
    /// Time is looked at when Postmark is, so processing shows once something observes it.
    pub(super) fn settle(&mut self) {
        let now = Instant::now();
        for m in &mut self.messages {
            if m.processed_at.is_some() || m.due > now {
                continue;
            }
            let at = ts::postmark();
            for email in m.recipients() {
                if !self.hard_bounces.contains(&email) {
                    continue;
                }
                let id = 692_560_173 + self.bounces.len() as i64;
                self.bounces.push(PmBounce {
                    id,
                    server: m.server.clone(),
                    message_id: m.message_id.clone(),
                    email,
                    from: m.from.clone(),
                    subject: m.subject.clone(),
                    tag: m.tag.clone(),
                    stream: m.stream.clone(),
                    bounced_at: at.clone(),
                    inactive: true,
                });
            }
            m.processed_at = Some(at);
        }
    }

    /// The bounce for `email` from message `message_id`, if it bounced.
    pub(super) fn bounce_of(&self, message_id: &str, email: &str) -> Option<&PmBounce> {
        self.bounces
            .iter()
            .find(|b| b.message_id == message_id && b.email == email)
    }

    /// Recipients suppressed on `server` by its hard bounces.
    fn suppressed(&self, server: &str) -> Vec<&str> {
        self.bounces
            .iter()
            .filter(|b| b.server == server && b.inactive)
            .map(|b| b.email.as_str())
            .collect()
    }

    pub(super) fn server_for_token(&self, token: &str) -> Option<&PmServer> {
        self.servers
            .iter()
            .find(|s| s.tokens.iter().any(|t| t == token))
    }

    /// The name of the server with ID `id`.
    pub(super) fn server_name(&self, id: i64) -> Result<String, SandboxError> {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.clone())
            .ok_or_else(|| SandboxError::UnknownServer {
                name: id.to_string(),
            })
    }

    fn server_mut(&mut self, name: &str) -> Result<&mut PmServer, SandboxError> {
        self.servers
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| SandboxError::UnknownServer { name: name.into() })
    }

    /// Dashboard: a new token (named, as the dashboard allows), unless the server is at
    /// the limit.
    pub(super) fn generate_token(
        &mut self,
        server: &str,
        name: Option<&str>,
    ) -> Result<String, SandboxError> {
        let limit = self.token_limit;
        let s = self.server_mut(server)?;
        if s.tokens.len() >= limit {
            return Err(SandboxError::TokenLimit {
                server: server.into(),
                limit,
            });
        }
        let token = uuid::Uuid::new_v4().to_string();
        s.tokens.push(token.clone());
        if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
            s.token_names.insert(token.clone(), name.to_string());
        }
        s.newest = Some(token.clone());
        Ok(token)
    }

    /// Dashboard: deletes a token; later requests with it get 401.
    pub(super) fn delete_token(&mut self, server: &str, token: &str) -> Result<(), SandboxError> {
        let s = self.server_mut(server)?;
        let before = s.tokens.len();
        s.tokens.retain(|t| t != token);
        if s.tokens.len() == before {
            return Err(SandboxError::UnknownToken {
                server: server.into(),
            });
        }
        s.deleted_tokens.push(token.to_string());
        if s.newest.as_deref() == Some(token) {
            s.newest = None;
        }
        Ok(())
    }

    pub(super) fn to_json(&self) -> Value {
        let mut by_token: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &self.messages {
            *by_token.entry(m.token.as_str()).or_default() += 1;
        }
        let servers: Vec<Value> = self
            .servers
            .iter()
            .map(|s| {
                json!({
                    "ID": s.id,
                    "Name": s.name,
                    "ApiTokens": s.tokens,
                    "DeletedTokens": s.deleted_tokens,
                    "TokenNames": s.token_names,
                    "NewestToken": s.newest,
                    "emails_sent": self.messages.iter().filter(|m| m.server == s.name).count(),
                })
            })
            .collect();
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| {
                json!({
                    "MessageID": m.message_id,
                    "server": m.server,
                    "token": m.token,
                    "From": m.from,
                    "To": m.to,
                    "SubmittedAt": m.submitted_at,
                    "Subject": m.subject,
                    "via": m.via,
                    "processed": m.processed_at.is_some(),
                })
            })
            .collect();
        json!({
            "servers": servers,
            "token_limit": self.token_limit,
            "emails": {"count": self.messages.len(), "by_token": by_token},
            "messages": messages,
            "bounces": self.bounces.iter().map(|b| json!({
                "ID": b.id, "server": b.server, "Email": b.email, "MessageID": b.message_id,
                "Inactive": b.inactive,
            })).collect::<Vec<_>>(),
            "rate_limit": self.pool.as_ref().map(|p| json!({"refused": p.refused})),
        })
    }
}

/// Postmark is the mail service of the sandbox's apps.
impl Mail for PostmarkState {
    fn server_tokens(&self, name: &str) -> Option<Vec<String>> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.tokens.clone())
    }

    fn send(&mut self, token: Option<&str>, email: &Value, via: &str) -> Result<Value, SendError> {
        let token = match token {
            None | Some("") => return Err(unauthorized(MISSING_TOKEN)),
            Some(t) => t,
        };
        let server = if token == TEST_TOKEN {
            None
        } else {
            match self.server_for_token(token) {
                Some(s) => Some(s.name.clone()),
                None => return Err(unauthorized(BAD_TOKEN)),
            }
        };
        let to = validate_email(email)?;
        self.settle();
        // The test token validates the request only; a real server also checks who sends
        // and who receives.
        if let Some(server) = &server {
            self.senders.check(
                str_field(email, "From"),
                &recipients(email),
                &self.suppressed(server),
            )?;
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let submitted_at = ts::postmark();
        if let Some(server) = server {
            self.messages.push(PmMessage {
                message_id: message_id.clone(),
                token: token.to_string(),
                server,
                from: str_field(email, "From").to_string(),
                to: to.clone(),
                cc: str_field(email, "Cc").to_string(),
                bcc: str_field(email, "Bcc").to_string(),
                subject: str_field(email, "Subject").to_string(),
                tag: str_field(email, "Tag").to_string(),
                stream: email
                    .get("MessageStream")
                    .and_then(Value::as_str)
                    .unwrap_or("outbound")
                    .to_string(),
                text_body: str_field(email, "TextBody").to_string(),
                html_body: str_field(email, "HtmlBody").to_string(),
                via: via.to_string(),
                submitted_at: submitted_at.clone(),
                due: Instant::now() + self.delivery,
                processed_at: None,
            });
        }
        Ok(json!({
            "To": to,
            "SubmittedAt": submitted_at,
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }))
    }

    fn check_token(&self, token: Option<&str>) -> Result<(), SendError> {
        match token {
            None | Some("") => Err(unauthorized(MISSING_TOKEN)),
            Some(t) if self.server_for_token(t).is_some() => Ok(()),
            Some(_) => Err(unauthorized(BAD_TOKEN)),
        }
    }
}

fn new_server(spec: &ServerSpec, index: usize, limit: usize) -> Result<PmServer, SandboxError> {
    if spec.name.is_empty() {
        return Err(SandboxError::Scenario {
            message: format!("postmark server #{index} has no name"),
        });
    }
    let mut tokens = spec.tokens.clone();
    if tokens.is_empty() {
        tokens.push(uuid::Uuid::new_v4().to_string());
    }
    if spec.fill_tokens_to_limit {
        while tokens.len() < limit {
            tokens.push(uuid::Uuid::new_v4().to_string());
        }
    }
    if tokens.len() > limit {
        return Err(SandboxError::Scenario {
            message: format!(
                "postmark server '{}' has {} tokens, more than the limit of {limit}",
                spec.name,
                tokens.len()
            ),
        });
    }
    let id = spec.id.unwrap_or(4242 + index as i64);
    let inbound_hash = uuid::Uuid::new_v4().simple().to_string();
    let settings = json!({
        "Color": spec.color,
        "SmtpApiActivated": true,
        "RawEmailEnabled": false,
        "DeliveryType": "Live",
        "InboundHookUrl": "",
        "BounceHookUrl": "",
        "OpenHookUrl": "",
        "DeliveryHookUrl": "",
        "PostFirstOpenOnly": false,
        "InboundDomain": "",
        "InboundSpamThreshold": 0,
        "TrackOpens": false,
        "TrackLinks": "None",
        "IncludeBounceContentInHook": true,
        "ClickHookUrl": "",
        "EnableSmtpApiErrorHooks": false,
    });
    Ok(PmServer {
        id,
        name: spec.name.clone(),
        tokens,
        deleted_tokens: Vec::new(),
        token_names: BTreeMap::new(),
        newest: None,
        settings: settings.as_object().cloned().unwrap_or_default(),
        inbound_hash,
    })
}

fn unauthorized(message: &str) -> SendError {
    SendError {
        status: 401,
        code: 10,
        message: message.into(),
    }
}

fn invalid(code: i64, message: impl Into<String>) -> SendError {
    SendError {
        status: 422,
        code,
        message: message.into(),
    }
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Every address an email goes to: its `To`, `Cc` and `Bcc`, each a comma-separated list.
fn recipients(email: &Value) -> Vec<&str> {
    ["To", "Cc", "Bcc"]
        .iter()
        .flat_map(|f| str_field(email, f).split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect()
}

/// Postmark's checks on one email; returns the `To` it will report.
fn validate_email(email: &Value) -> Result<String, SendError> {
    if !email.is_object() {
        return Err(invalid(402, "Received invalid JSON input."));
    }
    let from = str_field(email, "From").trim();
    if from.is_empty() || !from.contains('@') {
        return Err(invalid(300, format!("Invalid 'From' address: '{from}'.")));
    }
    let to = str_field(email, "To").trim();
    let recipients = recipients(email);
    if to.is_empty() && recipients.is_empty() {
        return Err(invalid(300, "Zero recipients specified"));
    }
    if let Some(bad) = recipients.iter().find(|r| !r.contains('@')) {
        return Err(invalid(
            300,
            format!("Error parsing 'To': Illegal email address '{bad}'. It must contain the '@' symbol."),
        ));
    }
    if recipients.len() > 50 {
        return Err(invalid(
            300,
            "Maximum of 50 recipients allowed per message.",
        ));
    }
    if str_field(email, "TextBody").is_empty() && str_field(email, "HtmlBody").is_empty() {
        return Err(invalid(
            300,
            "Provide either email TextBody or HtmlBody or both.",
        ));
    }
    match email.get("MessageStream").and_then(Value::as_str) {
        None | Some("outbound") | Some("broadcast") => {}
        Some(_) => {
            return Err(invalid(
                1235,
                "The 'MessageStream' provided does not exist on this server.",
            ))
        }
    }
    Ok(to.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::sandbox;
    use crate::{Sandbox, SandboxError, Scenario};

    #[tokio::test]
    async fn the_token_limit_is_three() {
        let sb = sandbox().await;
        sb.dashboard_generate_token("raxx-prod").unwrap();
        sb.dashboard_generate_token("raxx-prod").unwrap();
        let e = sb.dashboard_generate_token("raxx-prod").unwrap_err();
        assert!(matches!(e, SandboxError::TokenLimit { limit: 3, .. }));
        assert!(e.to_string().contains("already has 3 API tokens"));
        assert!(matches!(
            sb.dashboard_generate_token("nope"),
            Err(SandboxError::UnknownServer { .. })
        ));
        assert!(matches!(
            sb.dashboard_delete_token("raxx-prod", "nope"),
            Err(SandboxError::UnknownToken { .. })
        ));

        let full = Sandbox::start(Scenario::default().with_tokens_at_limit())
            .await
            .unwrap();
        assert_eq!(full.postmark_tokens("raxx-prod").map(|t| t.len()), Some(3));
        assert!(full.dashboard_generate_token("raxx-prod").is_err());
    }
}
