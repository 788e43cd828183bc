//! SSH signatures over approval requests and decisions, in the format git uses for signed
//! commits. `ssh-keygen -Y sign` makes them, so a key in an agent, on a hardware token or
//! behind a passphrase works as it does for git; `ssh-keygen -Y verify` checks them against
//! the team's allowed_signers file with OpenSSH's own rules (principal patterns,
//! `namespaces=`, `valid-after`/`valid-before`, certificate authorities), which a parser of
//! our own would only approximate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The namespace every runbook signature is made in: a signature made for git (or for
/// anything else) never passes as an approval, and the reverse.
pub const NAMESPACE: &str = "runbook-approval";

/// Where this person's signing key and the team's allowed signers are (`[identity]` in
/// runbook.toml, `RUNBOOK_SSH_KEY`, `RUNBOOK_ALLOWED_SIGNERS`).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The private key, or its public half when the private key is in an agent (as git's
    /// `user.signingKey`).
    pub signing_key: Option<PathBuf>,
    /// The allowed_signers file: `principal[,principal…] [options] key-type base64-key`.
    pub allowed_signers: Option<PathBuf>,
}

/// A signature that verified: the principal it proves and the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// How long signing may take: a passphrase typed, a hardware key touched.
const SIGN_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// Signs `message` with `key`: the armored `SSH SIGNATURE`. ssh-keygen talks to the person
/// directly (a passphrase, "confirm user presence" for a hardware key), so its prompts are
/// shown; it gets two minutes.
pub fn sign(key: &Path, message: &str) -> Result<String, String> {
    let dir = Scratch::new()?;
    let data = dir.write("message", message)?;
    let mut child = keygen()
        .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(not_found)?;
    let deadline = std::time::Instant::now() + SIGN_WITHIN;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ssh-keygen did not sign with {} within {} s (a passphrase or a hardware key's touch not given)",
                    key.display(),
                    SIGN_WITHIN.as_secs()
                ));
            }
            Err(e) => return Err(not_found(e)),
        }
    };
    if !status.success() {
        return Err(format!(
            "ssh-keygen could not sign with {} (its message is above)",
            key.display()
        ));
    }
    let mut sig = data.into_os_string();
    sig.push(".sig");
    std::fs::read_to_string(&sig).map_err(|e| format!("ssh-keygen's signature: {e}"))
}

/// Checks that `signature` is `claimed`'s signature of `message` by a key the allowed
/// signers file gives to that principal. `Err` says why not, in words.
pub fn verify(
    allowed: &Path,
    message: &str,
    signature: &str,
    claimed: &str,
) -> Result<Verified, String> {
    if !allowed.is_file() {
        return Err(format!(
            "the allowed signers file {} cannot be read",
            allowed.display()
        ));
    }
    // A principal is one word: the verifier's report must not be able to hold a second.
    if claimed.is_empty() || claimed.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(format!(
            "'{claimed}' cannot be an SSH principal: an allowed signers principal has no spaces or commas"
        ));
    }
    let fingerprint = fingerprint(signature)?;
    let dir = Scratch::new()?;
    let sig = dir.write("signature", signature)?;
    let out = run_with_input(
        keygen()
            .args(["-Y", "verify", "-n", NAMESPACE, "-f"])
            .arg(allowed)
            .arg("-I")
            .arg(claimed)
            .arg("-s")
            .arg(&sig),
        message,
    )?;
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        return Ok(Verified {
            principal: claimed.to_string(),
            fingerprint,
        });
    }
    // Why not: a key the file does not list, one it lists for someone else, or a
    // signature of other text.
    let found = run_with_input(
        keygen()
            .args(["-Y", "find-principals", "-f"])
            .arg(allowed)
            .arg("-s")
            .arg(&sig),
        "",
    )?;
    let principals: Vec<String> = String::from_utf8_lossy(&found.stdout)
        .lines()
        .flat_map(|l| l.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Err(if !found.status.success() || principals.is_empty() {
        format!(
            "the key that signed is not in the allowed signers file {}",
            allowed.display()
        )
    } else if !principals.iter().any(|p| p == claimed) {
        format!(
            "the key that signed belongs to {} in {}, not to '{claimed}'",
            principals
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", "),
            allowed.display()
        )
    } else {
        format!(
            "the signature does not verify for '{claimed}' ({}): it was made over other text, outside the key's validity, or for another namespace",
            last_line(said.as_bytes())
        )
    })
}

/// The `SHA256:…` fingerprint of the public key inside an armored SSH signature (the
/// SSHSIG blob: magic, version, then the key), computed here rather than read from what
/// ssh-keygen prints, which also holds the principal's text.
pub fn fingerprint(armored: &str) -> Result<String, String> {
    use base64::Engine as _;
    let bad = || "not an SSH signature (ssh-keygen -Y sign makes them)".to_string();
    let body: String = armored
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN SSH SIGNATURE-----")
        .skip(1)
        .take_while(|l| *l != "-----END SSH SIGNATURE-----")
        .collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad())?;
    let rest = blob.strip_prefix(b"SSHSIG").ok_or_else(bad)?;
    let (version, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
    if version != [0, 0, 0, 1] {
        return Err(bad());
    }
    let (len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let key = rest.get(..len).ok_or_else(bad)?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(key);
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

fn keygen() -> Command {
    Command::new("ssh-keygen")
}

fn not_found(e: std::io::Error) -> String {
    format!(
        "ssh-keygen cannot be run ({e}): SSH-signed approvals need OpenSSH 8.2 or later on PATH"
    )
}

fn run_with_input(cmd: &mut Command, input: &str) -> Result<std::process::Output, String> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(not_found)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A verifier that stopped reading early answers on its exit status.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().map_err(not_found)
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    crate::text::truncate(
        text.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no reason given"),
        200,
    )
}

/// A private directory for the files ssh-keygen reads and writes, removed after.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("runbook-ssh-{}", super::nonce()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| format!("a scratch directory for ssh-keygen: {e}"))?;
        Ok(Scratch(dir))
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.0.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen_available() -> bool {
        Command::new("ssh-keygen")
            .arg("-?")
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    fn key(dir: &Path, name: &str) -> (PathBuf, String) {
        let path = dir.join(name);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ssh-keygen made no key");
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap_or_default();
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        (path, public.join(" "))
    }

    #[test]
    fn a_signature_proves_its_principal_and_nothing_else() {
        if !keygen_available() {
            eprintln!("skipped: no ssh-keygen");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_pub) = key(dir.path(), "alice");
        let (mallory, _) = key(dir.path(), "mallory");
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(
            &allowed,
            format!("alice@example.com namespaces=\"{NAMESPACE}\" {alice_pub}\n"),
        )
        .unwrap();
        let sig = sign(&alice, "approve run 1\n").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"));

        let ok = verify(&allowed, "approve run 1\n", &sig, "alice@example.com").unwrap();
        assert_eq!(ok.principal, "alice@example.com");
        // The fingerprint is the key's, as `ssh-keygen -l` prints it.
        let listed = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(alice.with_extension("pub"))
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).to_string();
        assert_eq!(
            Some(ok.fingerprint.as_str()),
            listed.split_whitespace().nth(1),
            "{listed}"
        );
        // A principal with a space could smuggle text into what the verifier reports.
        assert!(verify(
            &allowed,
            "approve run 1\n",
            &sig,
            "SHA256:x alice@example.com"
        )
        .is_err_and(|e| e.contains("cannot be an SSH principal")));

        let other_text = verify(&allowed, "approve run 2\n", &sig, "alice@example.com");
        assert!(
            other_text.as_ref().is_err_and(|e| e.contains("other text")),
            "{other_text:?}"
        );
        let as_bob = verify(&allowed, "approve run 1\n", &sig, "bob@example.com");
        assert_eq!(
            as_bob,
            Err(format!(
                "the key that signed belongs to 'alice@example.com' in {}, not to 'bob@example.com'",
                allowed.display()
            ))
        );
        let unknown = sign(&mallory, "approve run 1\n").unwrap();
        let unlisted = verify(&allowed, "approve run 1\n", &unknown, "alice@example.com");
        assert_eq!(
            unlisted,
            Err(format!(
                "the key that signed is not in the allowed signers file {}",
                allowed.display()
            ))
        );
    }
}
