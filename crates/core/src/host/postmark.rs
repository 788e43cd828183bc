//! `postmark::`: the server API, and the dashboard-only token actions (operator-assisted in
//! a real run, performed by the simulator's dashboard under `--sandbox`).

use super::placeholder::Placeholder;
use super::prompt::{is_uuid, prompt_error};
use super::vendor_call::{dry_run_secret, is_dry_run_secret, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::value::{self, throw};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use runbook_secret::{Secret, Source};
use runbook_vendors::postmark::{Email, Server};
use runbook_vendors::ErrorKind;
use runbook_vendors::Vendor;

fn server_map(s: &Server) -> Map {
    let mut m = Map::new();
    m.insert("ID".into(), s.id.into());
    m.insert("Name".into(), s.name.clone().into());
    // Tokens stay secrets: `print(server)` must not show them.
    let tokens: Array = s.api_tokens.iter().cloned().map(Dynamic::from).collect();
    m.insert("ApiTokens".into(), tokens.into());
    m.insert("Color".into(), s.color.clone().into());
    m.insert("DeliveryType".into(), s.delivery_type.clone().into());
    m.insert("ServerLink".into(), s.server_link.clone().into());
    m.insert("SmtpApiActivated".into(), s.smtp_api_activated.into());
    m.insert("InboundAddress".into(), s.inbound_address.clone().into());
    m.insert("TrackOpens".into(), s.track_opens.into());
    m.insert("TrackLinks".into(), s.track_links.clone().into());
    m
}

fn server(h: &RunContext, token: Secret) -> R<Dynamic> {
    h.require_step("postmark::server")?;
    if is_dry_run_secret(&token) {
        return Ok(Placeholder::of("postmark::server(new token)"));
    }
    let v = h.vendors()?;
    let key = format!("postmark::server {}", token.fingerprint());
    let s = h.read_keyed("postmark GET /server", &key, async move {
        v.postmark().server(&token).await
    })?;
    Ok(server_map(&s).into())
}

fn token_status(h: &RunContext, token: Secret) -> R<Dynamic> {
    h.require_step("postmark::token_status")?;
    if is_dry_run_secret(&token) {
        return Ok(Placeholder::of("postmark::token_status"));
    }
    let v = h.vendors()?;
    let key = format!("postmark::token_status {}", token.fingerprint());
    let r = h.read_keyed("postmark GET /server", &key, async move {
        match v.postmark().server(&token).await {
            Ok(_) => Ok(200i64),
            // A token Postmark does not take is 401 here, as its docs answer it, whatever
            // the status its refusal came with (ErrorCode 10 on a 422 too).
            Err(e) if e.kind() == ErrorKind::Unauthorized => Ok(401i64),
            Err(e) => Err(e),
        }
    })?;
    Ok(r.into())
}

/// A sent message as Postmark processed it: #{MessageID, Status, Recipients, Delivered,
/// Bounced}, or () while Postmark has not processed it yet.
fn message(h: &RunContext, token: Secret, id: Dynamic) -> R<Dynamic> {
    h.require_step("postmark::message")?;
    // Under --dry-run the send was not made: its MessageID is a placeholder.
    if is_dry_run_secret(&token) || id.is::<Placeholder>() {
        return Ok(Placeholder::of("postmark::message"));
    }
    let id = value::plain_string(&id.to_string(), "postmark::message message_id")?;
    let id = id.as_str();
    let v = h.vendors()?;
    let message_id = id.to_string();
    let key = format!("postmark::message {} {id}", token.fingerprint());
    let got = h.read_keyed(
        &format!("postmark GET /messages/outbound/{id}/details"),
        &key,
        async move { v.postmark().outbound_message(&token, &message_id).await },
    )?;
    let Some(m) = got else {
        return Ok(Dynamic::UNIT);
    };
    let list =
        |v: Vec<&str>| -> rhai::Array { v.into_iter().map(|s| s.to_string().into()).collect() };
    let mut out = Map::new();
    out.insert("MessageID".into(), m.message_id.clone().into());
    out.insert("Status".into(), m.status.clone().into());
    out.insert(
        "Recipients".into(),
        list(m.recipients.iter().map(String::as_str).collect()).into(),
    );
    let of = |kind: &str| -> Vec<&str> {
        m.message_events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.recipient.as_str())
            .collect()
    };
    out.insert("Delivered".into(), list(of("Delivered")).into());
    out.insert("Bounced".into(), list(m.bounced()).into());
    Ok(out.into())
}

fn email_from(map: &Map) -> R<Email> {
    value::check_keys(
        map,
        &[
            "From",
            "To",
            "Cc",
            "Bcc",
            "Subject",
            "Tag",
            "HtmlBody",
            "TextBody",
            "ReplyTo",
            "MessageStream",
        ],
        "postmark::send_email",
    )?;
    let get = |k: &str| -> R<Option<String>> {
        match map.get(k) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => Ok(Some(value::plain_text(
                v,
                &format!("the email's {k}"),
                "mail is kept in clear at every hop and in every inbox; send its fingerprint() or masked() instead",
            )?)),
        }
    };
    let from = get("From")?.unwrap_or_default();
    let to = get("To")?.unwrap_or_default();
    if from.is_empty() || to.is_empty() {
        return Err(throw(
            "usage",
            "postmark::send_email needs From and To",
            None,
        ));
    }
    Ok(Email {
        from,
        to,
        cc: get("Cc")?,
        bcc: get("Bcc")?,
        subject: get("Subject")?,
        tag: get("Tag")?,
        html_body: get("HtmlBody")?,
        text_body: get("TextBody")?,
        reply_to: get("ReplyTo")?,
        message_stream: get("MessageStream")?,
        ..Email::default()
    })
}

fn send_email(h: &RunContext, token: Secret, email: Map) -> R<Dynamic> {
    let email = email_from(&email)?;
    let detail = serde_json::json!({"From": email.from, "To": email.to, "Subject": email.subject});
    let target = format!("POST /email to {}", email.to);
    h.writes().mutate(
        "postmark::send_email",
        Effect::Write,
        &target,
        detail,
        || {
            if is_dry_run_secret(&token) {
                return Ok(Placeholder::of("postmark::send_email"));
            }
            let v = h.vendors()?;
            let sent = h.block("postmark POST /email", async move {
                v.postmark().send_email(&token, &email).await
            })?;
            let mut m = Map::new();
            m.insert("To".into(), sent.to.into());
            m.insert("SubmittedAt".into(), sent.submitted_at.into());
            m.insert("MessageID".into(), sent.message_id.into());
            m.insert("ErrorCode".into(), sent.error_code.into());
            m.insert("Message".into(), sent.message.into());
            Ok(m.into())
        },
    )
}

/// The dashboard the operator is sent to: Postmark's, or a sandbox's in a rehearsal.
fn dashboard_url(h: &RunContext) -> String {
    h.services().config().postmark.dashboard_url.clone()
}

/// Runs a call of a rehearsal's simulated dashboard to completion; Ctrl-C abandons it.
fn simulated<T>(h: &RunContext, call: super::dashboard::DashboardFuture<T>) -> R<T> {
    let done = {
        let _call = h.say().call("sandbox dashboard");
        h.services().runtime.block_on(call)
    };
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(throw("runbook::vendor::dashboard", message, None)),
        Err(why) => Err(super::vendor_call::stopped(why)),
    }
}

/// Generates a token in a simulated dashboard; `None` in a real run.
fn sandbox_generate(h: &RunContext, server_name: &str, label: &str) -> R<Option<String>> {
    let Some(d) = h.services().dashboard() else {
        return Ok(None);
    };
    simulated(h, d.postmark_new_token(server_name, label)).map(Some)
}

/// Deletes a token in a simulated dashboard; `false` in a real run.
fn sandbox_delete(h: &RunContext, server_name: &str, token: &Secret) -> R<bool> {
    let Some(d) = h.services().dashboard() else {
        return Ok(false);
    };
    simulated(h, d.postmark_delete_token(server_name, token.expose()))?;
    Ok(true)
}

/// The token an earlier attempt of the step generated (it is on the server, the run lost
/// it): taken from the simulated dashboard, or pasted again by the operator. Nothing new is
/// generated.
fn dashboard_earlier_token(h: &RunContext, server_name: &str, opts: &Map) -> R<Dynamic> {
    h.require_step("postmark::dashboard_new_token")?;
    if h.dry_run() {
        return Ok(Dynamic::from(dry_run_secret(
            "postmark::dashboard_new_token",
        )));
    }
    let source = Source::Vendor {
        what: format!("Postmark dashboard ({server_name})"),
    };
    if let Some(d) = h.services().dashboard() {
        let newest = simulated(h, d.postmark_newest_token(server_name))?;
        return match newest {
            Some(token) => {
                h.say().progress(format!(
                    "    sandbox dashboard: using the token an earlier attempt generated on {server_name}"
                ));
                Ok(Dynamic::from(Secret::new(token, source)))
            }
            None => Err(throw(
                "runbook::vendor::dashboard",
                format!("the simulated server {server_name} has no token to use"),
                None,
            )),
        };
    }
    h.say().progress(
        "    An earlier attempt of this step generated a token, and this run does not have it.",
    );
    h.say().progress(
        "    If you still have it, paste it. If not (it is shown once), delete it in the dashboard",
    );
    h.say().progress(format!(
        "    ({} → server {server_name} → API Tokens: the newest) and retry this step.",
        dashboard_url(h)
    ));
    let id = value::opt_str(opts, "id")
        .map(|i| format!("{i}.earlier"))
        .unwrap_or_else(|| format!("{}.earlier_token", h.step_name()));
    pasted_token(
        h,
        &id,
        "Paste the token the earlier attempt generated",
        "paste the whole token; if it is lost, delete it in the dashboard and retry the step",
    )
    .map(Dynamic::from)
}

/// The token the operator pastes, checked to be a UUID. A mistyped paste at a terminal is
/// asked again (three tries in all); an answers file gives the same answer each time, so it
/// is taken once. Still not a token: the operator generated one before pasting, so the
/// error says the write may have applied (recorded in doubt: a retry of the step finds the
/// token the server holds now, and the undo names it). Before, one mistyped paste failed
/// the step and recorded that nothing was generated.
fn pasted_token(h: &RunContext, id: &str, question: &str, help: &str) -> R<Secret> {
    let operator = h.operator();
    let tries = if operator.prompter().asks_on_terminal(id) {
        3
    } else {
        1
    };
    let what = "the pasted value does not look like a Postmark server token (a UUID)";
    for left in (0..tries).rev() {
        let token = operator.secret(id, question).map_err(prompt_error)?;
        if is_uuid(token.expose()) {
            return Ok(token.with_source(Source::Prompt { id: id.into() }));
        }
        if left > 0 {
            h.say().warning(format!(
                "That does not look like a Postmark server token (a UUID). Try again ({left} {} left).",
                if left == 1 { "try" } else { "tries" }
            ));
        }
    }
    let mut m = value::error_fields("runbook::prompt::bad_answer", what, Some(help.into()));
    m.insert("maybe_applied".into(), true.into());
    Err(rhai::EvalAltResult::ErrorRuntime(m.into(), rhai::Position::NONE).into())
}

fn dashboard_new_token(h: &RunContext, server_name: &str, opts: Map) -> R<Dynamic> {
    value::check_keys(
        &opts,
        DASHBOARD_NEW_TOKEN_OPTIONS,
        "postmark::dashboard_new_token",
    )?;
    if opts.get("earlier").and_then(|e| e.as_bool().ok()) == Some(true) {
        return dashboard_earlier_token(h, server_name, &opts);
    }
    let label = value::opt_str(&opts, "name").unwrap_or_else(|| "rotation".into());
    let detail = serde_json::json!({"server": server_name, "token_name": label});
    let target = format!("dashboard: new API token on {server_name}");
    if h.dry_run() {
        h.require_step("postmark::dashboard_new_token")?;
        h.writes().planned(
            "postmark::dashboard_new_token",
            Effect::Write,
            &target,
            detail,
        );
        return Ok(Dynamic::from(dry_run_secret(
            "postmark::dashboard_new_token",
        )));
    }
    h.writes().mutate(
        "postmark::dashboard_new_token",
        Effect::Write,
        &target,
        detail,
        || {
            if let Some(token) = sandbox_generate(h, server_name, &label)? {
                h.say().progress(format!(
                    "    sandbox dashboard: generated API token '{label}' on {server_name}"
                ));
                return Ok(Dynamic::from(Secret::new(
                    token,
                    Source::Vendor {
                        what: format!("Postmark dashboard ({server_name})"),
                    },
                )));
            }
            h.say().progress("    In the Postmark dashboard:");
            for (i, line) in [
                format!(
                    "Open {} and select the server {server_name}.",
                    dashboard_url(h)
                ),
                "Click the API Tokens tab.".into(),
                "Click \"Generate New\".".into(),
                format!("Optionally name it \"{label}\"."),
                "Copy the new token immediately: it is shown once.".into(),
                "Do NOT delete the old token yet (that comes later).".into(),
            ]
            .iter()
            .enumerate()
            {
                h.say().progress(format!("      {}. {line}", i + 1));
            }
            let id = value::opt_str(&opts, "id")
                .unwrap_or_else(|| format!("{}.new_token", h.step_name()));
            pasted_token(
                h,
                &id,
                "Paste the new server API token",
                "the token you generated is on the server now: retry the step and paste it (copy the whole token from the API Tokens tab); if it is lost, delete it in the dashboard first",
            )
            .map(Dynamic::from)
        },
    )
}

/// What `dashboard_delete_token` asks once the operator was shown where the old token is.
pub(crate) const DELETED_QUESTION: &str = "Have you deleted the old token in the dashboard?";

fn dashboard_delete_token(h: &RunContext, server_name: &str, token: Secret) -> R<Dynamic> {
    let detail = serde_json::json!({"server": server_name, "token": token.fingerprint()});
    let target = format!(
        "dashboard: delete API token {} on {server_name}",
        token.masked()
    );
    h.writes().mutate(
        "postmark::dashboard_delete_token",
        Effect::Destructive,
        &target,
        detail,
        || {
            if sandbox_delete(h, server_name, &token)? {
                h.say().progress(format!(
                    "    sandbox dashboard: deleted API token {} on {server_name}",
                    token.masked()
                ));
                return Ok(Dynamic::UNIT);
            }
            h.say().progress("    In the Postmark dashboard:");
            for (i, line) in [
                format!(
                    "Open {} → server {server_name} → API Tokens.",
                    dashboard_url(h)
                ),
                format!(
                    "Locate the OLD token: the one ending in {}.",
                    token.masked()
                ),
                "Click Delete (or the trash icon; the UI varies).".into(),
                "Confirm.".into(),
            ]
            .iter()
            .enumerate()
            {
                h.say().progress(format!("      {}. {line}", i + 1));
            }
            let id = format!("{}.deleted", h.step_name());
            // Only the person at the dashboard can say it: `--yes` answered it before they
            // could, the old token stayed live and the verified rotation was rolled back.
            let done = match h.operator().confirm_judgement(&id, DELETED_QUESTION) {
                Ok(done) => done,
                // Nobody here to say it (no terminal, no answers entry): the run stops at
                // the question (exit 3), as at a confirmation it reaches. As the step's
                // failure, `--yes` chose its rollback: a rotation verified on every
                // consumer undone because nobody was there to delete a token.
                Err(e @ crate::prompt::PromptError::NoAnswer { .. }) => {
                    h.say().warning(format!("  ✗ {e}"));
                    if let Some(hint) = e.help() {
                        h.say().warning(format!("    {hint}"));
                    }
                    h.say().warning(format!(
                        "    the run stops here: delete the old token in the dashboard, then `runbook resume {}` at a terminal (or with that answers entry)",
                        h.info().run_id
                    ));
                    return Err(prompt_error(crate::prompt::PromptError::Aborted));
                }
                Err(e) => return Err(prompt_error(e)),
            };
            if !done {
                return Err(throw(
                    "prompt",
                    "the old token was not deleted",
                    Some("delete it, then retry the step".into()),
                ));
            }
            Ok(Dynamic::UNIT)
        },
    )
}

/// The options map's keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const DASHBOARD_NEW_TOKEN_OPTIONS: &[&str] = &["name", "id", "earlier"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Postmark.name());
    m.add("server", Effect::Read, &["token: Secret"], "Map",
        "GET /server with the server token: #{ID, Name, ApiTokens (Secrets), Color, ...}.\nFails with the vendor's error (401 for a bad token).",
        |c: NativeCallContext, t: Secret| value::at(&c, with_run(&c, "postmark::server", |h| server(h, t))));
    m.add("token_status", Effect::Read, &["token: Secret"], "int",
        "The HTTP status GET /server answers for this token: 200 when it works, 401 when it is\nrevoked or wrong. Other failures are errors.",
        |c: NativeCallContext, t: Secret| value::at(&c, with_run(&c, "postmark::token_status", |h| token_status(h, t))));
    m.add("message", Effect::Read, &["token: Secret", "message_id: string"], "Map | ()",
        "What Postmark made of a sent message (GET /messages/outbound/{id}/details): #{MessageID,\nStatus, Recipients, Delivered: [recipients], Bounced: [recipients]}, or () while Postmark has\nnot processed it (it answers 422 ErrorCode 701 until then): a send's 200 says it was\naccepted, not delivered.",
        |c: NativeCallContext, t: Secret, id: Dynamic| value::at(&c, with_run(&c, "postmark::message", |h| message(h, t, id))));
    m.add("send_email", Effect::Write, &["token: Secret", "email: Map"], "Map",
        "POST /email: #{From, To, Subject, TextBody, HtmlBody, Cc, Bcc, Tag, ReplyTo, MessageStream}.\nReturns #{MessageID, SubmittedAt, To, ErrorCode, Message}. Never retried (it could send twice).",
        |c: NativeCallContext, t: Secret, e: Map| value::at(&c, with_run(&c, "postmark::send_email", |h| send_email(h, t, e))))
    .repeat(Repeat::Never)
        .no_undo("a sent email cannot be unsent, and leaves no state to restore");
    m.add("dashboard_new_token", Effect::Write, &["server_name: string", "options: Map"], "Secret",
        "Generates a server API token in the dashboard (Postmark has no API for it): shows the\noperator the steps and reads the pasted token (masked, checked to be a UUID). Under\n--sandbox the simulator's dashboard generates it. Options: #{name, id, earlier}; with\nearlier: true nothing is generated: it gets the token an earlier attempt of the step\ngenerated and the run lost (from the simulated dashboard, or pasted again).",
        |c: NativeCallContext, s: &str, o: Map| value::at(&c, with_run(&c, "postmark::dashboard_new_token", |h| dashboard_new_token(h, s, o))))
    .repeat(Repeat::Never);
    m.add(
        "dashboard_new_token",
        Effect::Write,
        &["server_name: string"],
        "Secret",
        "Generates a server API token in the dashboard; see the two-argument form.",
        |c: NativeCallContext, s: &str| {
            value::at(
                &c,
                with_run(&c, "postmark::dashboard_new_token", |h| {
                    dashboard_new_token(h, s, Map::new())
                }),
            )
        },
    )
    .repeat(Repeat::Never);
    m.add("dashboard_url", Effect::None, &[], "string",
        "The dashboard the operator's instructions point at: POSTMARK_DASHBOARD_URL, Postmark's\nown (https://account.postmarkapp.com) by default, the sandbox's in a rehearsal.",
        |c: NativeCallContext| value::at(&c, with_run(&c, "postmark::dashboard_url", |h| Ok(Dynamic::from(dashboard_url(h))))));
    m.add("dashboard_delete_token", Effect::Destructive, &["server_name: string", "token: Secret"], "()",
        "Deletes a server API token in the dashboard: shows the operator which one (by its last\ncharacters) and waits for confirmation. Under --sandbox the simulator deletes it.",
        |c: NativeCallContext, s: &str, t: Secret| value::at(&c, with_run(&c, "postmark::dashboard_delete_token", |h| dashboard_delete_token(h, s, t))))
    .repeat(Repeat::Safe);
    m.finish();
}
