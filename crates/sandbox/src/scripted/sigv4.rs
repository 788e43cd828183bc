//! AWS Signature Version 4, as a service checks it: the request's canonical form, the
//! string to sign and the derived key, computed here from AWS's published algorithm (the
//! engine signs with AWS's own crate; the simulator must not share its code).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What the `Authorization` header of a signed request says.
pub(super) struct Signed {
    pub(super) access_key: String,
    /// `20261202/us-east-1/iam/aws4_request`.
    scope: String,
    date: String,
    signed_headers: Vec<String>,
    pub(super) signature: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
pub(super) fn parse(header: &str) -> Option<Signed> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (access_key, scope) = credential?.split_once('/')?;
    let date = scope.split('/').next()?.to_string();
    Some(Signed {
        access_key: access_key.to_string(),
        scope: scope.to_string(),
        date,
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

/// The signature the request should carry if it was signed with `secret`; `None` when a
/// signed header is missing.
pub(super) fn signature(
    signed: &Signed,
    secret: &str,
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<String> {
    let mut canonical_headers = String::new();
    for name in &signed.signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return None;
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| hex(&Sha256::digest(body)));
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload}",
        canonical_uri(path),
        canonical_query(raw_query),
        signed.signed_headers.join(";"),
    );
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok())?;
    // As AWS: the host and the time are signed, and the scope's date is the request's.
    if !["host", "x-amz-date"]
        .iter()
        .all(|h| signed.signed_headers.iter().any(|s| s == h))
        || !amz_date.starts_with(&signed.date)
    {
        return None;
    }
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        signed.scope,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut parts = signed.scope.split('/').skip(1);
    let (region, service) = (parts.next()?, parts.next()?);
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), signed.date.as_bytes())?;
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes())?;
    }
    Some(hex(&hmac(&key, to_sign.as_bytes())?))
}

/// Whether the request's `x-amz-date` is within 15 minutes of now (AWS refuses it
/// otherwise).
pub(super) fn fresh(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .is_some_and(within_fifteen_minutes)
}

fn within_fifteen_minutes(amz_date: &str) -> bool {
    within(amz_date, time::OffsetDateTime::now_utc())
}

fn within(amz_date: &str, now: time::OffsetDateTime) -> bool {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(at) = time::PrimitiveDateTime::parse(amz_date, format) else {
        return false;
    };
    (now - at.assume_utc()).abs() <= time::Duration::minutes(15)
}

fn hmac(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    // HMAC takes a key of any length: this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986: everything but unreserved characters percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The path as received, each segment encoded again (services other than S3 sign the
/// path double-encoded).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&percent_decode(k)), encode(&percent_decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decoding, for a signed query and for what the routes read (captures, form
/// fields): a `%` not followed by two hex digits stays as it is.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits, read as bytes: a `%` before a character of several bytes (or a
        // sign) is text, never a slice cut inside that character.
        if let (b'%', Some(high), Some(low)) = (bytes[i], hex(i + 1), hex(i + 2)) {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `%` before a character of several bytes used to cut the string inside it (a panic
    /// in the simulator); a `%` that is not followed by two hex digits is text.
    #[test]
    fn decoding_never_cuts_a_character() {
        assert_eq!(percent_decode("a%aé%41%+A%4"), "a%aéA%+A%4");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }

    /// AWS's own worked example (the IAM ListUsers GET request in the Signature Version 4
    /// documentation's "signing examples"): the same inputs give its published signature.
    #[test]
    fn the_documented_example_signs_to_the_documented_signature() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let signed = parse(auth).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let got = signature(
            &signed,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &headers,
            b"",
        );
        assert_eq!(got.as_deref(), Some(signed.signature.as_str()));
        // Signed without the host: refused, as AWS does.
        let unsigned_host = auth.replace("content-type;host;x-amz-date", "content-type;x-amz-date");
        let signed2 = parse(&unsigned_host).unwrap();
        assert!(signature(
            &signed2,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &headers,
            b""
        )
        .is_none());
        // 2015's request is stale today.
        assert!(!fresh(&headers));
        let now = time::OffsetDateTime::now_utc();
        assert!(within(
            &format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                now.year(),
                now.month() as u8,
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            ),
            now
        ));
    }
}
