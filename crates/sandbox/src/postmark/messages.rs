//! What Postmark shows of the mail it processed: the outbound message search and details,
//! and the bounces. A message appears only once processed (`delivery_ms` after the send);
//! lists page with `count` and `offset`, as Postmark's do.

use super::routes::{authorized, error_body};
use super::state::{PmBounce, PmMessage, PostmarkState};
use crate::shared::Shared;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The routes this module serves.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/messages/outbound", get(search_outbound))
        .route("/messages/outbound/{id}/details", get(outbound_details))
        .route("/bounces", get(search_bounces))
        .route("/bounces/{id}", get(bounce))
}

/// Postmark's largest page (`count`), and how deep `count + offset` may reach.
const MAX_COUNT: usize = 500;
const MAX_DEPTH: usize = 10_000;

/// `count` and `offset`, both required: `(count, offset)`, the count at most `cap` (the
/// scenario's `page_size`), or the refusal, with the list's query exception code.
fn page(
    q: &HashMap<String, String>,
    query_code: i64,
    cap: usize,
) -> Result<(usize, usize), Response> {
    let num = |name: &str| q.get(name).and_then(|v| v.trim().parse::<usize>().ok());
    match (num("count"), num("offset")) {
        (Some(count), Some(offset))
            if (1..=MAX_COUNT).contains(&count) && count + offset <= MAX_DEPTH =>
        {
            Ok((count.min(cap), offset))
        }
        _ => Err(error_body(
            422,
            query_code,
            &format!("The 'count' (1 to {MAX_COUNT}) and 'offset' parameters are required, and count + offset may be at most {MAX_DEPTH}."),
        )),
    }
}

/// `{"TotalCount": n, key: [items of this page]}`.
fn listed(key: &str, all: Vec<Value>, (count, offset): (usize, usize)) -> Response {
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(offset).take(count).collect();
    Json(json!({"TotalCount": total, key: items})).into_response()
}

/// The query value `name` (its name in any case), lower-cased, when given and not blank.
fn filter(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// Addresses as Postmark lists them: `[{"Email", "Name"}]`.
fn addresses(list: &str) -> Vec<Value> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let email = super::state::bare_address(a);
            // The swagger types the name as a string: none is "".
            let name = a
                .split_once('<')
                .map_or("", |(n, _)| n.trim().trim_matches('"'));
            json!({"Email": email, "Name": name})
        })
        .collect()
}

/// A processed message as the search lists it.
fn message_json(m: &PmMessage, processed_at: &str) -> Value {
    json!({
        "Tag": m.tag,
        "MessageID": m.message_id,
        "MessageStream": m.stream,
        "To": addresses(&m.to),
        "Cc": addresses(&m.cc),
        "Bcc": addresses(&m.bcc),
        "Recipients": m.recipients(),
        "ReceivedAt": processed_at,
        "From": m.from,
        "Subject": m.subject,
        "Attachments": [],
        "Status": "Sent",
        "TrackOpens": false,
        "TrackLinks": "None",
        "Metadata": {},
        "Sandboxed": false,
    })
}

/// A bounce as Postmark's bounce API answers it.
fn bounce_json(b: &PmBounce, server_id: i64) -> Value {
    json!({
        "ID": b.id,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": b.tag,
        "MessageID": b.message_id,
        "ServerID": server_id,
        "MessageStream": b.stream,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": b.email,
        "From": b.from,
        "BouncedAt": b.bounced_at,
        "DumpAvailable": false,
        "Inactive": b.inactive,
        "CanActivate": true,
        "RecordType": "Bounce",
        "Subject": b.subject,
        "Content": "",
    })
}

/// `GET /messages/outbound`: the server's processed messages, newest first, filtered by
/// `recipient`, `fromemail`, `tag`, `subject`, `messagestream` and `status` (`sent`).
async fn search_outbound(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.respond(|pm: &mut PostmarkState| {
        pm.settle();
        let server = match authorized(pm, &headers) {
            Ok(server) => server.name.clone(),
            Err(r) => return r,
        };
        let page = match page(&q, 700, pm.page_size) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (recipient, from, tag, subject, stream, status) = (
            filter(&q, "recipient"),
            filter(&q, "fromemail"),
            filter(&q, "tag"),
            filter(&q, "subject"),
            filter(&q, "messagestream"),
            filter(&q, "status"),
        );
        let all: Vec<Value> = pm
            .messages
            .iter()
            .rev()
            .filter(|m| m.server == server)
            .filter_map(|m| m.processed_at.as_deref().map(|at| (m, at)))
            .filter(|(m, _)| {
                recipient
                    .as_ref()
                    .is_none_or(|r| m.recipients().iter().any(|x| x.contains(r.as_str())))
                    && from
                        .as_ref()
                        .is_none_or(|f| m.from.to_ascii_lowercase().contains(f.as_str()))
                    && tag.as_ref().is_none_or(|t| m.tag.eq_ignore_ascii_case(t))
                    && subject
                        .as_ref()
                        .is_none_or(|t| m.subject.to_ascii_lowercase().contains(t.as_str()))
                    && stream.as_ref().is_none_or(|t| m.stream == *t)
                    // Every listed message is processed; none is still queued.
                    && status.as_deref().is_none_or(|t| t == "sent" || t == "processed")
            })
            .map(|(m, at)| message_json(m, at))
            .collect();
        listed("Messages", all, page)
    })
}

/// `GET /messages/outbound/{id}/details`: the message with its bodies and one event per
/// recipient (delivered, or bounced with the bounce's id). Before it is processed, and for
/// an id the server never sent, Postmark's "message not found" (422, ErrorCode 701).
async fn outbound_details(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    s.respond(|pm: &mut PostmarkState| {
        pm.settle();
        let server = match authorized(pm, &headers) {
            Ok(server) => server.name.clone(),
            Err(r) => return r,
        };
        let found = pm
            .messages
            .iter()
            .filter(|m| m.server == server && m.message_id == id)
            .find_map(|m| m.processed_at.as_deref().map(|at| (m, at)));
        let Some((m, at)) = found else {
            return error_body(422, 701, "This message was not found.");
        };
        let events: Vec<Value> = m
            .recipients()
            .into_iter()
            .map(|r| match pm.bounce_of(&m.message_id, &r) {
                Some(b) => json!({
                    "Recipient": r, "Type": "Bounced", "ReceivedAt": b.bounced_at,
                    "Details": {"Summary": "The server was unable to deliver your message (ex: unknown user, mailbox not found).", "BounceID": b.id.to_string()},
                }),
                None => json!({
                    "Recipient": r, "Type": "Delivered", "ReceivedAt": at,
                    "Details": {"DeliveryMessage": "smtp;250 2.0.0 OK", "DestinationServer": "mx.sandbox.invalid", "DestinationIP": "192.0.2.25"},
                }),
            })
            .collect();
        let mut body = message_json(m, at);
        body["TextBody"] = json!(m.text_body);
        body["HtmlBody"] = json!(m.html_body);
        body["Body"] = json!(if m.html_body.is_empty() {
            &m.text_body
        } else {
            &m.html_body
        });
        body["MessageEvents"] = Value::Array(events);
        Json(body).into_response()
    })
}

/// `GET /bounces`: the server's bounces, newest first, filtered by `type`, `inactive`,
/// `emailFilter`, `messageID` and `tag`.
async fn search_bounces(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.respond(|pm: &mut PostmarkState| {
        pm.settle();
        let (server, server_id) = match authorized(pm, &headers) {
            Ok(server) => (server.name.clone(), server.id),
            Err(r) => return r,
        };
        let page = match page(&q, 1000, pm.page_size) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (kind, inactive, email, message, tag) = (
            filter(&q, "type"),
            filter(&q, "inactive"),
            filter(&q, "emailfilter"),
            filter(&q, "messageid"),
            filter(&q, "tag"),
        );
        let all: Vec<Value> = pm
            .bounces
            .iter()
            .rev()
            .filter(|b| b.server == server)
            .filter(|b| {
                kind.as_deref().is_none_or(|k| k == "hardbounce")
                    && inactive
                        .as_deref()
                        .is_none_or(|i| (i == "true") == b.inactive)
                    && email.as_ref().is_none_or(|e| b.email.contains(e.as_str()))
                    && message
                        .as_ref()
                        .is_none_or(|m| b.message_id.eq_ignore_ascii_case(m))
                    && tag.as_ref().is_none_or(|t| b.tag.eq_ignore_ascii_case(t))
            })
            .map(|b| bounce_json(b, server_id))
            .collect();
        listed("Bounces", all, page)
    })
}

/// `GET /bounces/{id}`: one bounce of the server, or 422 ErrorCode 1001.
async fn bounce(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    s.respond(|pm: &mut PostmarkState| {
        pm.settle();
        let (server, server_id) = match authorized(pm, &headers) {
            Ok(server) => (server.name.clone(), server.id),
            Err(r) => return r,
        };
        match pm
            .bounces
            .iter()
            .find(|b| b.server == server && id.trim().parse::<i64>().ok() == Some(b.id))
        {
            Some(b) => Json(bounce_json(b, server_id)).into_response(),
            None => error_body(422, 1001, "Bounce was not found."),
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::testkit::{expect, postmark_check, raw};
    use crate::{Sandbox, Scenario};
    use reqwest::{Method, RequestBuilder};
    use serde_json::{json, Value};

    const TOKEN: &str = "pmsim-0001";

    /// A sandbox whose Postmark processes mail `delivery_ms` after a send and bounces `bounce`.
    async fn postmark(delivery_ms: u64, bounce: &[&str]) -> Sandbox {
        let mut scenario = Scenario::default().with_postmark_token(TOKEN);
        scenario.postmark.delivery_ms = delivery_ms;
        scenario.postmark.bounce = bounce.iter().map(|b| b.to_string()).collect();
        Sandbox::start(scenario).await.unwrap()
    }

    fn call(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
        raw()
            .request(method, format!("{}{path}", sb.postmark_url()))
            .header("Accept", "application/json")
            .header("X-Postmark-Server-Token", TOKEN)
    }

    /// Sends one email to `to`: its MessageID.
    async fn send(sb: &Sandbox, to: &str, tag: &str) -> String {
        let email = json!({"From": "noreply@raxx.app", "To": to, "Subject": "s", "TextBody": "t", "Tag": tag});
        let body = expect(200, call(sb, Method::POST, "/email").json(&email)).await;
        body["MessageID"].as_str().unwrap().to_string()
    }

    async fn details(sb: &Sandbox, id: &str, status: u16) -> Value {
        let path = format!("/messages/outbound/{id}/details");
        expect(status, call(sb, Method::GET, &path)).await
    }

    #[tokio::test]
    async fn a_message_is_not_found_or_listed_until_it_is_processed() {
        let sb = postmark(600_000, &[]).await;
        let id = send(&sb, "kris@example.com", "rotation").await;
        let body = details(&sb, &id, 422).await;
        assert_eq!(
            body,
            json!({"ErrorCode": 701, "Message": "This message was not found."})
        );
        let list = expect(
            200,
            call(&sb, Method::GET, "/messages/outbound?count=50&offset=0"),
        )
        .await;
        assert_eq!(list, json!({"TotalCount": 0, "Messages": []}));
        // Postmark has it, queued: the sandbox's own view says so.
        assert_eq!(sb.state()["postmark"]["messages"][0]["processed"], false);
    }

    #[tokio::test]
    async fn a_processed_message_shows_its_status_and_delivery_and_lists_page_by_count() {
        let sb = postmark(0, &[]).await;
        let id = send(&sb, "Kris <kris@example.com>", "rotation").await;
        let body = details(&sb, &id, 200).await;
        postmark_check("OutboundMessageDetailsResponse", &body, false);
        assert_eq!(body["Status"], "Sent");
        assert_eq!(
            body["To"],
            json!([{"Email": "kris@example.com", "Name": "Kris"}])
        );
        assert_eq!(body["MessageEvents"][0]["Type"], "Delivered");
        assert_eq!(body["MessageEvents"][0]["Recipient"], "kris@example.com");

        send(&sb, "ana@example.com", "other").await;
        send(&sb, "bo@example.com", "other").await;
        let list = |q: &str| call(&sb, Method::GET, &format!("/messages/outbound?{q}"));
        let first = expect(200, list("count=2&offset=0")).await;
        postmark_check("OutboundSearchResponse", &first, true);
        assert_eq!(first["TotalCount"], 3);
        let to = |page: &Value| -> Vec<String> {
            page["Messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Recipients"][0].as_str().unwrap().to_string())
                .collect()
        };
        // Newest first.
        assert_eq!(to(&first), vec!["bo@example.com", "ana@example.com"]);
        let rest = expect(200, list("count=2&offset=2")).await;
        assert_eq!(to(&rest), vec!["kris@example.com"]);
        let tagged = expect(200, list("count=10&offset=0&tag=rotation")).await;
        assert_eq!(tagged["TotalCount"], 1);
        assert_eq!(tagged["Messages"][0]["MessageID"], id.as_str());
        for bad in ["offset=0", "count=501&offset=0", "count=500&offset=9600"] {
            assert_eq!(expect(422, list(bad)).await["ErrorCode"], 700, "{bad}");
        }
        // Another server's token sees none of this server's mail; a bad one is refused.
        let anon = raw()
            .get(format!(
                "{}/messages/outbound?count=1&offset=0",
                sb.postmark_url()
            ))
            .header("X-Postmark-Server-Token", "nope");
        assert_eq!(expect(401, anon).await["ErrorCode"], 10);
    }

    #[tokio::test]
    async fn a_hard_bounce_is_listed_and_suppresses_the_recipient_once_processed() {
        let sb = postmark(0, &["gone@example.com"]).await;
        // Postmark accepts the send; the bounce comes from processing it.
        let id = send(&sb, "gone@example.com", "rotation").await;
        let bounces = expect(200, call(&sb, Method::GET, "/bounces?count=10&offset=0")).await;
        assert_eq!(bounces["TotalCount"], 1);
        let b = &bounces["Bounces"][0];
        let mut checked = b.clone();
        // The swagger is old: it types the bounce ID as a string; the API answers a number.
        checked.as_object_mut().unwrap().remove("ID");
        postmark_check("BounceInfoResponse", &checked, false);
        for field in [
            "Type",
            "TypeCode",
            "Email",
            "BouncedAt",
            "Inactive",
            "CanActivate",
        ] {
            assert!(b.get(field).is_some(), "{field}");
        }
        assert!(b["ID"].is_i64());
        assert_eq!(
            (
                b["Type"].as_str(),
                b["Email"].as_str(),
                b["MessageID"].as_str(),
                b["Inactive"].as_bool()
            ),
            (
                Some("HardBounce"),
                Some("gone@example.com"),
                Some(id.as_str()),
                Some(true)
            )
        );
        let one = expect(
            200,
            call(&sb, Method::GET, &format!("/bounces/{}", b["ID"])),
        )
        .await;
        assert_eq!(one["Email"], "gone@example.com");
        assert_eq!(
            expect(422, call(&sb, Method::GET, "/bounces/1")).await["ErrorCode"],
            1001
        );
        let events = details(&sb, &id, 200).await["MessageEvents"].clone();
        assert_eq!(events[0]["Type"], "Bounced");
        assert_eq!(events[0]["Details"]["BounceID"], b["ID"].to_string());

        let again = json!({"From": "noreply@raxx.app", "To": "ok@example.com, Gone@example.com", "Subject": "s", "TextBody": "t"});
        let refused = expect(422, call(&sb, Method::POST, "/email").json(&again)).await;
        assert_eq!(refused["ErrorCode"], 406);
        assert!(refused["Message"]
            .as_str()
            .unwrap()
            .contains("Found inactive addresses: gone@example.com."));
        let filtered = expect(
            200,
            call(
                &sb,
                Method::GET,
                "/bounces?count=10&offset=0&emailFilter=ok@",
            ),
        )
        .await;
        assert_eq!(filtered["TotalCount"], 0);
    }

    #[tokio::test]
    async fn the_scenario_page_size_caps_count_and_offset_pages_the_rest() {
        let mut scenario = Scenario::default().with_postmark_token(TOKEN);
        scenario.postmark.delivery_ms = 0;
        scenario.postmark.page_size = Some(2);
        let sb = Sandbox::start(scenario).await.unwrap();
        for to in ["a@example.com", "b@example.com", "c@example.com"] {
            send(&sb, to, "").await;
        }
        let list = |offset: usize| {
            call(
                &sb,
                Method::GET,
                &format!("/messages/outbound?count=500&offset={offset}"),
            )
        };
        let first = expect(200, list(0)).await;
        assert_eq!(
            (
                first["TotalCount"].as_u64(),
                first["Messages"].as_array().map(Vec::len)
            ),
            (Some(3), Some(2))
        );
        let rest = expect(200, list(2)).await;
        assert_eq!(rest["Messages"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn a_bounce_waits_for_processing_and_until_then_the_recipient_still_receives() {
        let sb = postmark(600_000, &["gone@example.com"]).await;
        send(&sb, "gone@example.com", "").await;
        // Not processed: no bounce yet, and the next send to it is accepted.
        send(&sb, "gone@example.com", "").await;
        let bounces = expect(200, call(&sb, Method::GET, "/bounces?count=10&offset=0")).await;
        assert_eq!(bounces, json!({"TotalCount": 0, "Bounces": []}));
    }
}
