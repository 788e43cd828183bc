//! The state directory: audit log, journals, locks, history. Private to the user.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a state function says what it had to fix (a folder others could read).
pub type Warn<'a> = &'a dyn Fn(String);

/// `$RUNBOOK_STATE_DIR`, else `$XDG_STATE_HOME/runbook`, else `~/.local/state/runbook`;
/// `env` looks up the process's environment.
pub fn dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("RUNBOOK_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return PathBuf::from(d).join("runbook");
    }
    let home = env("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/runbook")
}

/// The largest runbook, module, answers file or scenario read (no honest one comes near).
pub const MAX_INPUT_BYTES: u64 = 8 << 20;

/// The largest journal read: a run of thousands of steps stays far below.
pub const MAX_JOURNAL_BYTES: u64 = 512 << 20;

/// Reads a UTF-8 input file (runbooks, answers), naming the file and the first bad byte;
/// one over [`MAX_INPUT_BYTES`] is refused unread.
pub(crate) fn read_text(path: &Path) -> crate::error::Result<String> {
    read_text_within(path, MAX_INPUT_BYTES, "an input file")
}

/// Reads a UTF-8 text file of at most `limit` bytes.
pub(crate) fn read_text_within(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> crate::error::Result<String> {
    let bytes = read_within(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| crate::error::Error::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Reads a state file runbook wrote (a journal) of at most `limit` bytes: bytes that are
/// not text are its damage, named by line (not an input to save again as UTF-8).
pub(crate) fn read_state_within(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> crate::error::Result<String> {
    let bytes = read_within(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| not_text(path, e.as_bytes(), e.utf8_error()))
}

/// The error for a state file whose `bytes` are text up to `error`.
pub(crate) fn not_text(
    path: &Path,
    bytes: &[u8],
    error: std::str::Utf8Error,
) -> crate::error::Error {
    let before = &bytes[..error.valid_up_to()];
    crate::error::Error::StateNotText {
        path: path.to_path_buf(),
        line: before.iter().filter(|&&b| b == b'\n').count() + 1,
    }
}

fn read_within(path: &Path, limit: u64, what: &'static str) -> crate::error::Result<Vec<u8>> {
    use crate::error::Error;
    // A FIFO or device would block (or never end) the read: only regular files are text.
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source: io::Error::other("it is not a regular file"),
            });
        }
        if meta.len() > limit {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                what,
                bytes: meta.len(),
                limit,
            });
        }
    }
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates a directory (and parents) readable only by the user; one found looser (an
/// existing `0755` state directory) is tightened to `0700`, with a warning.
/// A folder that is a symbolic link, or belongs to another user, is refused: state is never
/// written through a link to somewhere else, nor into a folder someone else controls.
pub fn ensure_dir(path: &Path, warn: Warn) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if meta.file_type().is_symlink() {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; runbook does not keep state through links (replace it with a real directory, or point RUNBOOK_STATE_DIR at one)",
                    path.display()
                )));
            }
            if !meta.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
            owned_by_me(path, &meta)?;
        }
        Err(_) => {
            let missing: Vec<&Path> = path
                .ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
                .collect();
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)?;
            // Each new folder is named in the one above it, which is synced for it; not kept
            // unless it is (the next try makes them, and syncs them, again).
            for made in &missing {
                if let Err(e) = sync_dir(parent_of(made), warn) {
                    for m in &missing {
                        let _ = fs::remove_dir(m);
                    }
                    return Err(e);
                }
            }
        }
    }
    tighten(path, &fs::symlink_metadata(path)?, 0o700, warn)
}

/// The folder that names `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the entries of folder `dir` durable. A file's fsync covers its contents, not the
/// entry that names it: after a power loss a new journal could be missing whole, with the
/// lines synced before a vendor write, unless its folder is synced once it is made (ext4
/// without a journal, as here, keeps no order between the two). A folder that cannot be
/// synced by its nature (one this user cannot open, a filesystem without folder syncs) is
/// said, not fatal: the file's own syncs still say when they fail. A sync that fails (an
/// I/O error: the disk is failing) is an error: what was made there may not survive.
pub(crate) fn sync_dir(dir: &Path, warn: Warn) -> io::Result<()> {
    #[cfg(test)]
    SYNCED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_path_buf());
    let said = |e: &io::Error| {
        warn(format!(
            "warning: cannot make the entries of {} durable ({e}); a power loss could lose a file made there",
            dir.display()
        ))
    };
    let folder = match File::open(dir) {
        Ok(folder) => folder,
        Err(e) => {
            said(&e);
            return Ok(());
        }
    };
    let synced = folder.sync_all();
    #[cfg(test)]
    let synced = match DIR_SYNC_FAILS.with(|f| f.get()) {
        true => Err(io::Error::from_raw_os_error(libc::EIO)),
        false => synced,
    };
    match synced {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => {
            said(&e);
            Ok(())
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "cannot make the entries of {} durable ({e}): a power loss could lose what was made there",
                dir.display()
            ),
        )),
    }
}

#[cfg(test)]
thread_local! {
    /// Makes this thread's folder syncs fail as a failing disk's would.
    static DIR_SYNC_FAILS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Every folder synced, for the tests of durability (tests run at once: each looks for its
/// own temporary folders).
#[cfg(test)]
pub(crate) static SYNCED_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Checks `base` and every existing step from it down to `path` (the file included): none
/// may be a symbolic link or belong to another user. What does not exist yet is fine.
pub fn check_within(base: &Path, path: &Path) -> io::Result<()> {
    let check = |p: &Path| -> io::Result<bool> {
        match fs::symlink_metadata(p) {
            Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::other(format!(
                "{} is a symbolic link; runbook does not keep state through links (replace it with a real file or directory, or point RUNBOOK_STATE_DIR at one)",
                p.display()
            ))),
            Ok(meta) => owned_by_me(p, &meta).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    };
    let mut at = base.to_path_buf();
    if !check(&at)? {
        return Ok(());
    }
    for part in path
        .strip_prefix(base)
        .unwrap_or(Path::new(""))
        .components()
    {
        at.push(part);
        if !check(&at)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether a file's owner is the user who runs runbook.
pub(crate) fn mine(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    meta.uid() == unsafe { libc::geteuid() }
}

/// State belongs to the user who runs runbook: a folder or file owned by someone else could
/// be read or rewritten by them.
fn owned_by_me(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !mine(meta) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        return Err(io::Error::other(format!(
            "{} belongs to another user (uid {}, not {me}); runbook keeps state only where it alone can write",
            path.display(),
            meta.uid()
        )));
    }
    Ok(())
}

/// Opens a file for appending (and reading its tail), creating it `0600` and tightening one
/// found looser. A symlink is refused, not followed: the audit log and journals are appended
/// where they are, never through a link to somewhere else.
pub(crate) fn append(path: &Path, warn: Warn) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent, warn)?;
    }
    let open = |create: bool| {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| refused_link(path, e))
    };
    let file = match open(false) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
            Ok(made) => {
                // Not kept unless its name is durable: the next try makes it again.
                if let Err(e) = sync_dir(parent_of(path), warn) {
                    let _ = fs::remove_file(path);
                    return Err(e);
                }
                made
            }
            // Another process made it in between, and may not have synced its folder yet:
            // this one may sync the file before it does.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = open(false)?;
                sync_dir(parent_of(path), warn)?;
                file
            }
            Err(e) => return Err(e),
        },
        opened => opened?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    owned_by_me(path, &meta)?;
    tighten(path, &meta, 0o600, warn)?;
    Ok(file)
}

/// `O_NOFOLLOW` on a symlink fails with ELOOP, whose text ("too many levels of symbolic
/// links") says nothing useful; say what happened instead.
fn refused_link(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::other(format!(
            "{} is a symbolic link; runbook does not keep state through links (replace it with a real file, or point RUNBOOK_STATE_DIR at a real directory)",
            path.display()
        ))
    } else {
        e
    }
}

/// Narrows the mode of a state file or folder to `want` when group or others can reach it.
fn tighten(path: &Path, meta: &fs::Metadata, want: u32, warn: Warn) -> io::Result<()> {
    tightened(path, meta, want, warn, |p| fs::set_permissions(path, p))
}

/// `tighten` for a file held open: changed through its descriptor, so a link put at the
/// path since cannot redirect the change.
pub(crate) fn tighten_file(
    file: &File,
    path: &Path,
    meta: &fs::Metadata,
    warn: Warn,
) -> io::Result<()> {
    tightened(path, meta, 0o600, warn, |p| file.set_permissions(p))
}

fn tightened(
    path: &Path,
    meta: &fs::Metadata,
    want: u32,
    warn: Warn,
    set: impl FnOnce(fs::Permissions) -> io::Result<()>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    set(fs::Permissions::from_mode(want))?;
    warn(format!(
        "warning: {} was readable by others (mode {mode:04o}); tightened it to {want:04o}",
        path.display()
    ));
    Ok(())
}

/// The state's fingerprint key (`fingerprint.key`, 32 random bytes, `0600`), created on
/// first use. Two processes racing to create it agree: only one `create_new` wins and both
/// read its key.
pub(crate) fn fingerprint_key(dir: &Path, warn: Warn) -> io::Result<[u8; 32]> {
    use std::io::{Read, Write};
    ensure_dir(dir, warn)?;
    let path = dir.join("fingerprint.key");
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(&runbook_secret::random_key())?;
            f.sync_all()?;
            // Not kept unless its name is durable: the next try draws and syncs another.
            if let Err(e) = sync_dir(dir, warn) {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(refused_link(&path, e)),
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| refused_link(&path, e))?;
    let meta = file.metadata()?;
    tighten(&path, &meta, 0o600, warn)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        io::Error::other(format!(
            "{} is damaged ({} bytes, not 32); fingerprints journalled here cannot be checked without it",
            path.display(),
            b.len()
        ))
    })
}

/// Writes a whole file `0600`, replacing it atomically, and makes its name durable: a
/// file's fsync covers its bytes, not the rename that puts them in place, so without the
/// folder's a power loss could bring back the old file (or none) after the caller was told
/// it was written.
pub fn write(path: &Path, contents: &[u8], warn: Warn) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent)?;
        }
    }
    // A name of its own: `with_extension` gave every approver of a run the same one
    // (`RUN.decision.tmp`, for `RUN.decision.UUID`), opened truncated, so one could link
    // another's text as its decision.
    let tmp = parent_of(path).join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| refused_link(&tmp, e))?;
    let written = {
        use std::io::Write;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&tmp, path))
    };
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    sync_dir(parent_of(path), warn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced(dir: &Path) -> bool {
        SYNCED_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|d| d == dir)
    }

    /// A file replaced whole is written under a name of its own first: a file named as
    /// the old temporary name (`RUN.decision.tmp` beside `RUN.decision.UUID`, another
    /// approver's) is left alone.
    #[test]
    fn a_replaced_file_takes_a_temporary_name_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("r1.decision.tmp");
        fs::write(&other, "another approver's").unwrap();
        let mine = dir.path().join("r1.decision.0a1b");
        write(&mine, b"mine", &|_| {}).unwrap();
        assert_eq!(fs::read_to_string(&mine).unwrap(), "mine");
        assert_eq!(fs::read_to_string(&other).unwrap(), "another approver's");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    /// A file replaced whole (an approval's request, the team-mode marker) has its new name
    /// made durable in its folder, not only its bytes.
    #[test]
    fn a_replaced_file_is_named_durably_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.request");
        write(&path, b"first", &|_| {}).unwrap();
        write(&path, b"second", &|_| {}).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert!(synced(dir.path()), "the rename's folder was not synced");
    }

    /// What a file's own fsync does not cover, the entry that names it, is made durable
    /// where a state file or folder is made.
    #[test]
    fn a_new_state_file_is_named_durably_in_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        fingerprint_key(&state, &|_| {}).unwrap();
        assert!(synced(root.path()), "the new state folder, in its parent");
        assert!(synced(&state), "the new key, in the state folder");
        let said = std::cell::RefCell::new(Vec::new());
        sync_dir(&root.path().join("gone"), &|w| said.borrow_mut().push(w)).unwrap();
        assert_eq!(
            said.borrow().len(),
            1,
            "a folder that cannot be synced is said"
        );
        assert!(said.borrow()[0].starts_with("warning: cannot make the entries of "));
        let deep = root.path().join("a").join("b");
        ensure_dir(&deep, &|_| {}).unwrap();
        assert!(
            synced(root.path()) && synced(&root.path().join("a")),
            "each new folder, in its parent"
        );
        let journal = root.path().join("runs").join("r.jsonl");
        append(&journal, &|_| {}).unwrap();
        assert!(synced(&root.path().join("runs")), "a new journal, in runs/");
    }

    /// A folder sync that fails (a failing disk's EIO) is an error, not a warning, and the
    /// new file is not kept: a run would otherwise go on to vendor writes with a journal a
    /// power loss could take whole (cold review). The next try makes it again.
    #[test]
    fn a_new_file_whose_folder_cannot_be_synced_is_refused_and_not_kept() {
        let root = tempfile::tempdir().unwrap();
        let journal = root.path().join("runs").join("r.jsonl");
        ensure_dir(&root.path().join("runs"), &|_| {}).unwrap();
        DIR_SYNC_FAILS.with(|f| f.set(true));
        let failed = append(&journal, &|_| {});
        DIR_SYNC_FAILS.with(|f| f.set(false));
        let e = failed.expect_err("the folder's failed sync is an error");
        assert!(e.to_string().contains("cannot make the entries of"), "{e}");
        assert!(
            !journal.exists(),
            "the file whose name is not durable is not kept"
        );
        append(&journal, &|_| {}).unwrap();
        assert!(journal.exists());
        // Folders made for it, and a new state folder's key, likewise.
        let deep = root.path().join("x").join("y");
        DIR_SYNC_FAILS.with(|f| f.set(true));
        let made = ensure_dir(&deep, &|_| {});
        let key = fingerprint_key(&root.path().join("fresh"), &|_| {});
        DIR_SYNC_FAILS.with(|f| f.set(false));
        assert!(made.is_err() && !root.path().join("x").exists());
        assert!(key.is_err());
        assert!(!root.path().join("fresh/fingerprint.key").exists());
    }
}
