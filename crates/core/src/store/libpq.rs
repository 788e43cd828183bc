//! The state URL read as libpq reads a connection string, so that what works with `psql`
//! works here: a service name (`service=` or `PGSERVICE`, from `PGSERVICEFILE` or
//! `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf`), the `PG*` environment for
//! what neither sets, the password file (`PGPASSFILE` or `~/.pgpass`, ignored when others may
//! read it) when no password is given, and every `sslmode` including `verify-ca` and
//! `verify-full` with `sslrootcert`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How TLS is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    /// `disable`.
    Off,
    /// `allow`/`prefer`: on loopback none, elsewhere required and verified (a downgrade by
    /// anyone on the path is not accepted).
    Default,
    /// `require`, `verify-ca`, `verify-full`: TLS, the certificate verified against
    /// `roots` (the platform's when `None`), wherever the server is.
    Verified { roots: Option<PathBuf> },
}

/// A connection string with libpq's sources applied: the text the driver parses (its own
/// keys only) and the TLS wanted.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub conninfo: String,
    pub tls: Tls,
}

/// What the environment gives: a variable, and the home directory.
pub(crate) struct Env<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
}

/// The keys the driver understands; anything else is libpq's and handled here.
const DRIVER_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "connect_timeout",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The environment variables libpq reads for each key.
const ENV_KEYS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("application_name", "PGAPPNAME"),
];

pub(crate) fn resolve(url: &str, env: &Env) -> Result<Resolved, String> {
    let mut keys = parse(url)?;
    let service = keys.remove("service").or_else(|| (env.var)("PGSERVICE"));
    if let Some(name) = service {
        for (k, v) in service_entry(&name, env)? {
            keys.entry(k).or_insert(v);
        }
    }
    for (key, var) in ENV_KEYS {
        if !keys.contains_key(*key) {
            if let Some(v) = (env.var)(var).filter(|v| !v.is_empty()) {
                keys.insert(key.to_string(), v);
            }
        }
    }
    if !keys.contains_key("password") {
        if let Some(p) = password_from_file(&keys, env) {
            keys.insert("password".into(), p);
        }
    }
    let sslmode = keys.remove("sslmode").unwrap_or_else(|| "prefer".into());
    let roots = keys
        .remove("sslrootcert")
        .filter(|r| r != "system")
        .map(PathBuf::from);
    let tls = match sslmode.as_str() {
        "disable" => Tls::Off,
        "allow" | "prefer" => Tls::Default,
        "require" | "verify-ca" | "verify-full" => Tls::Verified { roots },
        other => {
            return Err(format!(
                "sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ))
        }
    };
    if let Tls::Verified { roots: Some(path) } = &tls {
        if !path.is_file() {
            return Err(format!(
                "sslrootcert {} is not a readable file",
                path.display()
            ));
        }
    }
    let unknown: Vec<&String> = keys
        .keys()
        .filter(|k| !DRIVER_KEYS.contains(&k.as_str()))
        .collect();
    if let Some(k) = unknown.first() {
        return Err(format!("the connection option '{k}' is not supported"));
    }
    let conninfo = keys
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Resolved { conninfo, tls })
}

/// A URL (`postgres://user:pw@host:port/db?k=v`) or a `key=value` string, as its keys.
fn parse(url: &str) -> Result<BTreeMap<String, String>, String> {
    let mut keys = BTreeMap::new();
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        keys.extend(pairs(url)?);
        return Ok(keys);
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    // The user info ends at the last `@`: a password may hold one unencoded.
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                keys.insert("user".into(), decode(user)?);
            }
            if let Some(p) = password {
                keys.insert("password".into(), decode(p)?);
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut names = Vec::new();
        let mut ports = Vec::new();
        for h in hosts.split(',') {
            let (name, port) = if let Some(v6) = h.strip_prefix('[') {
                let (addr, after) = v6.split_once(']').ok_or("an IPv6 host lacks its ']'")?;
                (
                    addr.to_string(),
                    after.strip_prefix(':').map(str::to_string),
                )
            } else {
                match h.rsplit_once(':') {
                    Some((n, p)) => (n.to_string(), Some(p.to_string())),
                    None => (h.to_string(), None),
                }
            };
            names.push(decode(&name)?);
            ports.push(port.unwrap_or_default());
        }
        keys.insert("host".into(), names.join(","));
        if ports.iter().any(|p| !p.is_empty()) {
            keys.insert("port".into(), ports.join(","));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        keys.insert("dbname".into(), decode(db)?);
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        keys.insert(decode(k)?, decode(v)?);
    }
    Ok(keys)
}

/// A `key=value` connection string's pairs, as libpq reads them: spaces around `=` allowed,
/// a value in single quotes may hold spaces, `\'` and `\\`. An error never echoes the text
/// (a value may be a password).
pub(crate) fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        skip_spaces(&mut chars);
        if chars.next() != Some('=') || key.is_empty() {
            return Err("the connection string is not a list of key=value".into());
        }
        skip_spaces(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err("a quoted value in the connection string is not closed".into())
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Percent-decoding of a URL part.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or("a '%' is not followed by two hex digits")?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| "a '%' is not followed by two hex digits")?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-encoded part is not UTF-8".into())
}

/// The keys of service `name`: the user's service file, then the system's.
fn service_entry(name: &str, env: &Env) -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    match (env.var)("PGSERVICEFILE") {
        Some(f) => files.push(f.into()),
        None => files.extend(env.home.as_ref().map(|h| h.join(".pg_service.conf"))),
    }
    let sysconf = (env.var)("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into());
    files.push(Path::new(&sysconf).join("pg_service.conf"));
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(entry) = section(&text, name) {
            return Ok(entry);
        }
    }
    Err(format!(
        "no service '{name}' in {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

/// The `key=value` lines of `[name]` in a service file.
fn section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            if inside {
                found = Some(Vec::new());
            } else if found.is_some() {
                break;
            }
            continue;
        }
        if let (true, Some(entry), Some((k, v))) = (inside, found.as_mut(), line.split_once('=')) {
            entry.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    found
}

/// The password the password file has for these keys, as libpq finds it: the first line
/// whose host, port, database and user match (`*` matches any); the file is ignored when
/// its group or others may read it.
fn password_from_file(keys: &BTreeMap<String, String>, env: &Env) -> Option<String> {
    let file = match (env.var)("PGPASSFILE") {
        Some(f) => PathBuf::from(f),
        None => env.home.as_ref()?.join(".pgpass"),
    };
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&file).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let host = keys.get("host").map_or("localhost", String::as_str);
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = keys.get("port").map_or("5432", String::as_str);
    let user = keys
        .get("user")
        .cloned()
        .or_else(|| (env.var)("USER"))
        .unwrap_or_default();
    let db = keys.get("dbname").cloned().unwrap_or_else(|| user.clone());
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let fields = split_pgpass(l);
            (fields.len() == 5).then_some(fields)
        })
        .find(|f| {
            let ok = |field: &str, value: &str| field == "*" || field == value;
            ok(&f[0], host) && ok(&f[1], port) && ok(&f[2], &db) && ok(&f[3], &user)
        })
        .map(|f| f[4].clone())
}

/// A password file line's fields: `:` separates, `\:` and `\\` are themselves.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(url: &str, vars: &[(&str, &str)], home: Option<&Path>) -> Result<Resolved, String> {
        let var = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        resolve(
            url,
            &Env {
                var: &var,
                home: home.map(Path::to_path_buf),
            },
        )
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let r = resolved(
            "postgres://db.internal/runbook",
            &[
                ("PGUSER", "alice"),
                ("PGPASSWORD", "s3cret"),
                ("PGPORT", "6432"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            r.conninfo,
            "dbname='runbook' host='db.internal' password='s3cret' port='6432' user='alice'"
        );
        assert_eq!(r.tls, Tls::Default);
        // The URL wins over the environment.
        let r = resolved(
            "postgres://bob:pw@h/db",
            &[("PGUSER", "alice"), ("PGPASSWORD", "x")],
            None,
        )
        .unwrap();
        assert!(
            r.conninfo.contains("user='bob'") && r.conninfo.contains("password='pw'"),
            "{}",
            r.conninfo
        );
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:alice:nope\ndb.internal:*:runbook:alice:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = resolved(
            "postgres://alice@db.internal/runbook",
            &[],
            Some(dir.path()),
        )
        .unwrap();
        assert!(
            r.conninfo.contains("password='pa:ss\\\\word'"),
            "{}",
            r.conninfo
        );
        let r = resolved("postgres://carol@elsewhere/x", &[], Some(dir.path())).unwrap();
        assert!(r.conninfo.contains("password='fallback'"), "{}", r.conninfo);
        // PGPASSFILE names another file; one others may read is ignored.
        let open = dir.path().join("open");
        std::fs::write(&open, "*:*:*:*:leaked\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = open.to_string_lossy().into_owned();
        let r = resolved("postgres://alice@h/db", &[("PGPASSFILE", &path)], None).unwrap();
        assert!(!r.conninfo.contains("password"), "{}", r.conninfo);
    }

    #[test]
    fn a_service_name_brings_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".pg_service.conf"),
            "[other]\nhost=wrong\n\n[runbook]\nhost=db.internal\nport=5433\ndbname=rb\nuser=ops\nsslmode=verify-full\n",
        )
        .unwrap();
        let r = resolved("service = 'runbook'", &[], Some(dir.path())).unwrap();
        assert_eq!(
            r.conninfo,
            "dbname='rb' host='db.internal' port='5433' user='ops'"
        );
        assert_eq!(r.tls, Tls::Verified { roots: None });
        let r = resolved(
            "postgres:///x",
            &[("PGSERVICE", "runbook")],
            Some(dir.path()),
        )
        .unwrap();
        assert!(r.conninfo.contains("dbname='x'"), "{}", r.conninfo);
        let e = resolved("service=missing", &[], Some(dir.path())).unwrap_err();
        assert!(e.starts_with("no service 'missing' in "), "{e}");
    }

    #[test]
    fn a_key_value_string_takes_quotes_and_never_echoes_a_value() {
        let p = pairs("host=db  password = 'two words \\' here' dbname=rb").unwrap();
        assert_eq!(
            p,
            vec![
                ("host".to_string(), "db".to_string()),
                ("password".to_string(), "two words ' here".to_string()),
                ("dbname".to_string(), "rb".to_string()),
            ]
        );
        let e = pairs("host=db hunter2secret").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(pairs("password='open").is_err());
    }

    #[test]
    fn every_sslmode_is_understood_and_a_missing_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let url = format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        assert_eq!(
            resolved(&url, &[], None).unwrap().tls,
            Tls::Verified {
                roots: Some(ca.clone())
            }
        );
        assert_eq!(
            resolved("postgres://h/db?sslmode=disable", &[], None)
                .unwrap()
                .tls,
            Tls::Off
        );
        assert_eq!(
            resolved(
                "postgres://h/db?sslmode=verify-ca&sslrootcert=system",
                &[],
                None
            )
            .unwrap()
            .tls,
            Tls::Verified { roots: None }
        );
        let e = resolved(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nope/ca.pem",
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(e, "sslrootcert /nope/ca.pem is not a readable file");
        let e = resolved("postgres://h/db?sslmode=sometimes", &[], None).unwrap_err();
        assert!(e.contains("is not one of disable"), "{e}");
        let e = resolved("postgres://h/db?gssencmode=require", &[], None).unwrap_err();
        assert_eq!(e, "the connection option 'gssencmode' is not supported");
    }
}
