//! The file backend: the state directory as it always was. `runs/RUN_ID.jsonl` journals
//! (fsynced when the writer asks: before every vendor write and at the run's end),
//! `audit.jsonl` appended under `flock`, `locks/KEY.lock` created with
//! `O_EXCL`, `approvals/RUN_ID.json` with its `.decision` linked into place (the first
//! decision wins), `fingerprint.key`, and `settled-runs`: the journals found settled, with
//! what they were then, so a run's start does not read them again.

use super::{ApprovalStore, AuditStore, Backend, Fence, Holder, JournalStore, LockStore, Slot};
use crate::error::{Error, Result};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Files {
    dir: PathBuf,
    /// Where a folder or file found readable by others, and tightened, is reported.
    say: crate::sink::Say,
    /// How long a run waits for a write's record (`Backend::wait`).
    wait: Duration,
    /// Per file appended to, the descriptor held since its first append: every later append
    /// and sync goes through it, once a stat says the file at the path is still that one.
    /// Opening the file for each of a run's ~60 appends re-checked every folder above it
    /// (400-odd stats a rotation). A sync must go through a descriptor open before the
    /// lines it covers were written: a writeback error is reported to every descriptor open
    /// when it happened, but not to one opened after another process's fsync has already
    /// seen it (the audit log is shared), so one opened only to sync could miss a lost line.
    held: std::sync::Mutex<std::collections::HashMap<PathBuf, HeldSlot>>,
    /// Lock files read to confirm a lease (every fenced append asks), each held open after
    /// its first read and read again through its descriptor while it is still the file at
    /// its path: a lock broken and taken again is another file.
    locks_read: std::sync::Mutex<std::collections::HashMap<PathBuf, std::fs::File>>,
    /// Files whose sync failed, and why. A failed fsync may have dropped what it was to
    /// write, and a later one through a new descriptor would not say so (nor would one of
    /// the file that replaced it): every later sync of that file fails the same way, and a
    /// run stops sending writes instead of going on with lines that may be lost.
    failed: std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
    /// Every append and sync, in order, for the tests of when records become durable.
    #[cfg(test)]
    pub(crate) trace: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every file opened to be appended to, in order.
    #[cfg(test)]
    opened: std::sync::Mutex<Vec<PathBuf>>,
}

impl Files {
    pub fn new(dir: &Path, say: crate::sink::Say) -> Files {
        Files {
            dir: dir.to_path_buf(),
            say,
            wait: super::DEFAULT_WAIT,
            held: Default::default(),
            locks_read: Default::default(),
            failed: Default::default(),
            #[cfg(test)]
            trace: Default::default(),
            #[cfg(test)]
            opened: Default::default(),
        }
    }

    /// How long a run waits for a full or read-only disk to take a write's record.
    pub fn waiting(self, wait: Duration) -> Files {
        Files { wait, ..self }
    }

    #[cfg(test)]
    fn traced(&self, what: String) {
        self.trace.lock().unwrap().push(what);
    }

    /// The slot of `path`'s held descriptor. Appends to one file in this process take its
    /// slot in turn (the flock that orders them across processes is per descriptor, and
    /// they share one); appends to different files do not wait on each other.
    fn slot(&self, path: &Path) -> HeldSlot {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.contains_key(path) && held.len() >= MAX_HELD {
            // A process that appends to many journals (an operator's sweep) closes those
            // whose lines are all synced and that no thread is using (slots are handed out
            // under this lock: one only the map holds is in nobody's hands).
            held.retain(|_, slot| {
                std::sync::Arc::strong_count(slot) > 1
                    || slot
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .is_some_and(|h| h.unsynced)
            });
        }
        held.entry(path.to_path_buf()).or_default().clone()
    }

    /// Records that `path`'s lines may be lost (`reason`): every later write or sync of it
    /// fails the same way.
    fn fail(&self, path: &Path, reason: String) -> Error {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), reason.clone());
        Error::NotDurable {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// Appends to `path` through its held descriptor (opened, checked and held on the
    /// first append, or when the file it held was replaced after its lines were synced):
    /// `write` gets the file, under its flock and ending on a line, and its length.
    fn append_held(
        &self,
        path: &Path,
        durable: bool,
        write: impl FnOnce(&mut std::fs::File, u64) -> Result<()>,
    ) -> Result<()> {
        let slot = self.slot(path);
        let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
        // Asked under the file's slot: another thread's failed sync, just before, consumed
        // the error a sync here would otherwise report.
        self.not_failed(path)?;
        // The file's length is read under the flock, which every appender holds.
        let (h, lock, len) = loop {
            let opened = held.is_none();
            if opened {
                #[cfg(test)]
                self.opened.lock().unwrap().push(path.to_path_buf());
                self.checked_for_write(path)?;
                let file = crate::state::append(path, &self.warn()).map_err(write_err(path))?;
                *held = Some(Held {
                    file,
                    unsynced: false,
                });
            }
            let Some(h) = held.as_mut() else { continue };
            let lock = FileLock::exclusive(&h.file).map_err(write_err(path))?;
            // Checked under the flock: a file replaced while this waited for it is seen.
            match still_there(path, &h.file) {
                Ok(meta) => {
                    // Loosened during the run: tightened again, as an open would.
                    crate::state::tighten_file(&h.file, path, &meta, &self.warn())
                        .map_err(write_err(path))?;
                    break (h, lock, meta.len());
                }
                // Replaced between its open and its flock: another try will see what is there.
                Err(Lost::Gone(e)) if opened => return Err(write_err(path)(e)),
                // Replaced or removed after this process wrote to it, its lines synced or
                // not: the file at the path, or one made there, would hold the rest without
                // what came before (a journal without its start, an audit chain begun
                // again from nothing) and the run would end as if nothing had happened.
                Err(Lost::Gone(e)) => return Err(self.fail(path, e.to_string())),
                Err(Lost::Unknown(e)) => return Err(write_err(path)(e)),
            }
        };
        let (len, cut) = end_on_a_line(&mut h.file, len).map_err(write_err(path))?;
        said_cut(&self.warn(), path, cut);
        let written = write(&mut h.file, len);
        drop(lock);
        written?;
        h.unsynced = true;
        if durable {
            self.sync_held(path, h, true)
        } else {
            Ok(())
        }
    }

    /// Refuses to write to or sync a file whose sync failed earlier in this process: what
    /// follows would be lost with what came before, and a later sync could not say so.
    fn not_failed(&self, path: &Path) -> Result<()> {
        match self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            Some(reason) => Err(Error::NotDurable {
                path: path.to_path_buf(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Puts what was appended to `path` on stable storage, through the descriptor held since
    /// its first append. A file with lines not yet synced that is gone now, or another file
    /// in its place, was removed or replaced under the run. A failed fsync of such lines, or
    /// such a file, is final (`Error::NotDurable`); failing to open a file this process has
    /// nothing unsynced in, to sync it, is not.
    fn sync(&self, path: &Path) -> Result<()> {
        let slot = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
        let Some(slot) = slot else {
            self.not_failed(path)?;
            return self.sync_unheld(path);
        };
        let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
        self.not_failed(path)?;
        let Some(h) = held.as_mut() else {
            return self.sync_unheld(path);
        };
        if h.unsynced {
            return self.sync_held(path, h, false);
        }
        match still_there(path, &h.file) {
            Ok(_) => h.file.sync_data().map_err(write_err(path)),
            // Replaced or removed since its lines were synced: what is there now.
            Err(Lost::Gone(_)) => {
                *held = None;
                self.sync_unheld(path)
            }
            Err(Lost::Unknown(e)) => Err(write_err(path)(e)),
        }
    }

    /// Syncs a file this process holds nothing unsynced in, through a descriptor of its own,
    /// opened after the same checks as an append's.
    fn sync_unheld(&self, path: &Path) -> Result<()> {
        self.checked_for_write(path)?;
        sync_file(path)
    }

    /// Syncs the lines appended through `h`, the descriptor held for `path`: a failure, or
    /// another file at the path (they went with the file replaced), loses them. `written`:
    /// a line was just written, so an error must not read as "not stored" (a caller that
    /// tries again would write it twice): a path that cannot be looked at is final too.
    fn sync_held(&self, path: &Path, h: &mut Held, written: bool) -> Result<()> {
        match still_there(path, &h.file) {
            Ok(_) => h
                .file
                .sync_data()
                .map_err(|e| self.fail(path, e.to_string()))?,
            Err(Lost::Gone(e)) => return Err(self.fail(path, e.to_string())),
            Err(Lost::Unknown(e)) if written => return Err(self.fail(path, e.to_string())),
            Err(Lost::Unknown(e)) => return Err(write_err(path)(e)),
        }
        h.unsynced = false;
        Ok(())
    }

    fn warn(&self) -> impl Fn(String) + '_ {
        |text| self.say.warning(text)
    }

    /// `path` is reached without a link and through folders of this user only.
    fn checked(&self, path: &Path) -> Result<()> {
        crate::state::check_within(&self.dir, path).map_err(read_err(path))
    }

    fn checked_for_write(&self, path: &Path) -> Result<()> {
        crate::state::check_within(&self.dir, path).map_err(write_err(path))
    }

    fn read_optional(&self, path: &Path) -> Result<Option<String>> {
        self.checked(path)?;
        read_optional(path)
    }

    fn journal_path(&self, run_id: &str) -> PathBuf {
        self.dir.join("runs").join(format!("{run_id}.jsonl"))
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    fn lock_file(&self, key: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{key}.lock"))
    }

    fn approvals(&self) -> PathBuf {
        self.dir.join("approvals")
    }

    fn request_path(&self, run_id: &str) -> PathBuf {
        self.approvals().join(format!("{run_id}.json"))
    }

    fn decision_path(&self, run_id: &str) -> PathBuf {
        self.approvals().join(format!("{run_id}.decision"))
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Puts `path` on stable storage through a descriptor of its own: when this process has
/// appended nothing since its last sync. A file that is gone is an error.
fn sync_file(path: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(write_err(path))?;
    file.sync_data().map_err(write_err(path))
}

/// Whether `file` is still the file at `path`, and its metadata when it is.
fn still_there(path: &Path, file: &std::fs::File) -> std::result::Result<std::fs::Metadata, Lost> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().map_err(Lost::Unknown)?;
    let now = match std::fs::symlink_metadata(path) {
        Ok(now) => now,
        // Unlinked: gone. Still linked somewhere (its folder moved aside): it may be back.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && held.nlink() == 0 => {
            return Err(Lost::Gone(std::io::Error::new(
                e.kind(),
                "it was removed during the run, with what was appended to it",
            )))
        }
        Err(e) => return Err(Lost::Unknown(e)),
    };
    if (held.dev(), held.ino()) != (now.dev(), now.ino()) {
        return Err(Lost::Gone(std::io::Error::other(
            "another file took its place during the run: what was appended is in the file that was replaced",
        )));
    }
    Ok(held)
}

/// `path` opened to be read, with its metadata; `None` when it does not exist. Opened,
/// then checked, then read: what is read is what was checked. Not through a link; a FIFO
/// (opened without blocking) is refused as not a regular file.
fn open_regular(path: &Path) -> std::io::Result<Option<(std::fs::File, std::fs::Metadata)>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        file => file?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    Ok(Some((file, meta)))
}

/// The text of a small file (a lock's) of `len` bytes, read from its start.
fn read_whole(file: &std::fs::File, len: u64) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len.min(64 * 1024) as usize];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    bytes.truncate(got);
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Whether a lock file's text names the taking `lease_id`.
fn names_lease(text: &str, lease_id: &str) -> bool {
    serde_json::from_str::<Holder>(text).is_ok_and(|h| h.lease_id == lease_id)
}

/// Why a held file could not be confirmed at its path.
enum Lost {
    /// Removed, or another file in its place: what was appended to it is not in the file
    /// at the path, whatever comes next.
    Gone(std::io::Error),
    /// The path cannot be looked at now (a folder above it moved, a disk error): the file
    /// may be back at it later, so asking again may help.
    Unknown(std::io::Error),
}

/// A file this process appends to (`Files::held`).
struct Held {
    file: std::fs::File,
    /// Lines were appended through it since its last sync.
    unsynced: bool,
}

/// A file's held descriptor, `None` until its first append.
type HeldSlot = std::sync::Arc<std::sync::Mutex<Option<Held>>>;

/// How many files a process holds open for appending before it closes those it is done
/// with.
const MAX_HELD: usize = 32;

/// A file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => crate::state::read_state_within(path, crate::state::MAX_JOURNAL_BYTES, "a state file")
            .map(Some),
    }
}

/// A journal as a run's start found it: a change to it (an append, a rewrite) moves its
/// length or its change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    ctime: i64,
    ctime_ns: i64,
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Seen {
        use std::os::unix::fs::MetadataExt;
        Seen {
            len: meta.len(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
        }
    }
}

/// `settled-runs`: a run id and its journal's `Seen` when it was found settled, a line
/// each; the last line for a run is the one that counts. A line without its newline, or
/// not of that form, is skipped (a write cut short).
fn settled_index(text: &str) -> std::collections::HashMap<String, Seen> {
    text.split_inclusive('\n')
        .filter_map(|l| {
            let mut f = l.strip_suffix('\n')?.split(' ');
            let id = f.next()?.to_string();
            let seen = Seen {
                len: f.next()?.parse().ok()?,
                ctime: f.next()?.parse().ok()?,
                ctime_ns: f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some((id, seen))
        })
        .collect()
}

/// A journal's last line, as `last_line` read it.
struct Tail {
    line: String,
    /// The file as it was read.
    seen: Seen,
    /// Its last byte is a newline: no write of it is cut short.
    ends_on_a_line: bool,
}

/// A file's last non-empty line (without its newline), read from its end (a window that
/// grows until it holds a whole line); `None` when there is no file.
fn last_line(path: &Path) -> std::io::Result<Option<Tail>> {
    use std::io::{Read, Seek, SeekFrom};
    // A FIFO or a device in its place would block the open (every run's start) forever.
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if !m.is_file() => {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(_) => {}
    }
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let seen = Seen::of(&meta);
    let mut window: u64 = 8 << 10;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity((len - start) as usize);
        Read::by_ref(&mut file)
            .take(len - start)
            .read_to_end(&mut bytes)?;
        let ends_on_a_line = bytes.last() == Some(&b'\n');
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_end();
        let tail = |line: &str| {
            Ok(Some(Tail {
                line: line.to_string(),
                seen,
                ends_on_a_line,
            }))
        };
        match trimmed.rfind('\n') {
            Some(i) => return tail(&trimmed[i + 1..]),
            None if start == 0 => return tail(trimmed),
            None => window = window.saturating_mul(4),
        }
    }
}

impl Backend for Files {
    fn describe(&self) -> String {
        format!("the state directory {}", self.dir.display())
    }
    fn dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
    fn wait(&self) -> Duration {
        self.wait
    }
    fn fingerprint_key(&self) -> Result<[u8; 32]> {
        crate::state::fingerprint_key(&self.dir, &self.warn())
            .map_err(write_err(&self.dir.join("fingerprint.key")))
    }
}

impl JournalStore for Files {
    fn journal_where(&self, run_id: &str) -> String {
        self.journal_path(run_id).display().to_string()
    }
    fn runs_where(&self) -> String {
        self.dir.join("runs").display().to_string()
    }
    fn journal_append(&self, run_id: &str, line: &str, durable: bool) -> Result<()> {
        #[cfg(test)]
        self.traced(format!(
            "journal {}",
            if durable { "durable" } else { "line" }
        ));
        let path = self.journal_path(run_id);
        // Under flock, as the audit log: a run that lost its lock may still be appending its
        // last line, and a line longer than a page shows part-written to a reader; the
        // line-boundary repair must not take it for a torn one.
        self.append_held(&path, durable, |file, len| {
            append_line(file, len, line).map_err(write_err(&path))
        })
    }
    fn journal_append_fenced(
        &self,
        run_id: &str,
        line: &str,
        fence: &Fence,
        durable: bool,
    ) -> Result<bool> {
        // The lock file names its taking; a lock broken and taken again names another.
        if !self.lock_renew(&fence.key, &fence.lease_id)? {
            return Ok(false);
        }
        self.journal_append(run_id, line, durable).map(|()| true)
    }
    fn appends_are_durable(&self) -> bool {
        false
    }
    fn journal_sync(&self, run_id: &str) -> Result<()> {
        #[cfg(test)]
        self.traced("journal sync".into());
        // fsync is per file, not per descriptor: it takes every line appended before it.
        let path = self.journal_path(run_id);
        self.sync(&path)
    }
    fn journal(&self, run_id: &str) -> Result<Option<String>> {
        self.read_optional(&self.journal_path(run_id))
    }
    fn journal_bytes(&self, run_id: &str) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let path = self.journal_path(run_id);
        self.checked(&path)?;
        let Some((file, _)) = open_regular(&path).map_err(read_err(&path))? else {
            return Ok(None);
        };
        let limit = crate::state::MAX_JOURNAL_BYTES;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err(&path))?;
        if bytes.len() as u64 > limit {
            return Err(read_err(&path)(std::io::Error::other(format!(
                "it is over the journal's size limit ({} MiB)",
                limit >> 20
            ))));
        }
        Ok(Some(bytes))
    }
    fn journal_last(&self, run_id: &str) -> Result<Option<String>> {
        let path = self.journal_path(run_id);
        self.checked(&path)?;
        Ok(last_line(&path).map_err(read_err(&path))?.map(|t| t.line))
    }
    fn unsettled_runs(&self, settles: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        // `settled-runs` remembers the journals found settled, and their length and change
        // time then: one that has kept both is not read again (a run reopened appends to
        // it). Every start read the end of every journal: +20 ms a rotation with 1,000.
        let index = self.dir.join("settled-runs");
        let known = match self.read_optional(&index) {
            Ok(text) => settled_index(text.as_deref().unwrap_or("")),
            // Only a shortcut: without it every journal is read.
            Err(e) => {
                self.say.warning(format!(
                    "warning: {e}; every run's journal is read to find an unfinished one"
                ));
                Default::default()
            }
        };
        let mut found = String::new();
        let mut out = Vec::new();
        // A file named as no run can be is no run: nothing could resume or abandon it.
        for id in self
            .runs()?
            .into_iter()
            .filter(|id| crate::run::is_run_id(id))
        {
            let path = self.journal_path(&id);
            // The folder was checked by `runs`; the file is checked here, as `checked` would.
            if let (Some(seen), Ok(meta)) = (known.get(&id), std::fs::symlink_metadata(&path)) {
                if meta.is_file() && crate::state::mine(&meta) && Seen::of(&meta) == *seen {
                    continue;
                }
            }
            #[cfg(test)]
            self.traced(format!("read the end of {id}"));
            // A journal whose end cannot be read may be unfinished: the caller reads it
            // whole, and says what is wrong with it.
            let tail = match self
                .checked(&path)
                .and_then(|()| last_line(&path).map_err(read_err(&path)))
            {
                Ok(Some(tail)) => tail,
                Ok(None) => continue,
                Err(_) => {
                    out.push(id);
                    continue;
                }
            };
            if !settles(&tail.line) {
                out.push(id);
            } else if tail.ends_on_a_line && crate::run::is_run_id(&id) {
                // Only a journal that ends on a newline: nothing ever cuts one back (a torn
                // last line is cut before the next append, which could restore the length).
                let seen = tail.seen;
                found.push_str(&format!(
                    "{id} {} {} {}\n",
                    seen.len, seen.ctime, seen.ctime_ns
                ));
            }
        }
        if !found.is_empty() {
            // A start that cannot write it reads those journals again next time.
            let _ = self.checked_for_write(&index).and_then(|()| {
                crate::state::append(&index, &self.warn())
                    .and_then(|mut f| std::io::Write::write_all(&mut f, found.as_bytes()))
                    .map_err(write_err(&index))
            });
        }
        Ok(out)
    }
    fn runs(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("runs");
        self.checked(&dir)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(&dir)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".jsonl").map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl AuditStore for Files {
    fn audit_append(
        &self,
        make: &mut dyn FnMut(&str) -> Result<String>,
        durable: bool,
    ) -> Result<Option<String>> {
        #[cfg(test)]
        self.traced(format!(
            "audit {}",
            if durable { "durable" } else { "entry" }
        ));
        let path = self.audit_path();
        self.append_held(&path, durable, |file, len| {
            let prev = last_hash(file).map_err(write_err(&path))?;
            let line = make(&prev)?;
            append_line(file, len, &line).map_err(write_err(&path))
        })
        .map(|()| None)
    }
    fn audit_sync(&self) -> Result<()> {
        #[cfg(test)]
        self.traced("audit sync".into());
        let path = self.audit_path();
        self.sync(&path)
    }
    fn audit_lines(&self) -> Result<Vec<String>> {
        let path = self.audit_path();
        self.checked(&path)?;
        match std::fs::read(&path) {
            Ok(bytes) => match std::str::from_utf8(&bytes) {
                Ok(t) => Ok(t.lines().map(str::to_string).collect()),
                Err(e) => Err(crate::state::not_text(&path, &bytes, e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(read_err(&path)(e)),
        }
    }
    fn audit_each_line(&self, each: &mut dyn FnMut(&str)) -> Result<()> {
        use std::io::BufRead;
        let path = self.audit_path();
        self.checked(&path)?;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(read_err(&path)(e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        for n in 1.. {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(read_err(&path))?
                == 0
            {
                break;
            }
            let text = std::str::from_utf8(&line).map_err(|_| Error::StateNotText {
                path: path.clone(),
                line: n,
            })?;
            each(text.trim_end_matches(['\n', '\r']));
        }
        Ok(())
    }
    fn audit_lines_of(&self, run_id: &str) -> Result<Vec<String>> {
        // Line by line: the log grows with every run the team makes.
        let marker = super::run_marker(run_id);
        let mut out = Vec::new();
        self.audit_each_line(&mut |line| {
            if line.contains(&marker) {
                out.push(line.to_string());
            }
        })?;
        Ok(out)
    }
    fn audit_where(&self) -> String {
        self.audit_path().display().to_string()
    }
}

/// Takes a lock by making its file and then writing it, where hard links cannot be made: a
/// process killed in between leaves a lock that names nobody.
fn lock_in_place(path: &Path, text: &str) -> Result<bool> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(mut f) => {
            if let Err(e) = f.write_all(text.as_bytes()).and_then(|_| f.sync_all()) {
                let _ = std::fs::remove_file(path);
                return Err(write_err(path)(e));
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(write_err(path)(e)),
    }
}

/// What a process killed between writing its taking of `name` and linking it into place
/// left beside it (`.NAME.PID.LEASE.taking`): removed once its process is gone, so the
/// folder does not fill with them. A live process's is left. The pid is read on this host:
/// on a folder shared between hosts another host's taking may be removed while it runs,
/// which only fails that taking (its link finds nothing, and that start fails saying so).
fn remove_dead_takings(lock: &Path, name: &str) {
    let (Some(dir), prefix) = (lock.parent(), format!(".{name}.")) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(prefix.as_str()))
            .and_then(|f| f.strip_suffix(".taking"))
        else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<i64>().ok());
        if pid.is_some_and(|pid| !crate::run::pid_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl LockStore for Files {
    fn lease(&self) -> Option<Duration> {
        None
    }
    fn lock_create(&self, key: &str, holder: &Holder) -> Result<bool> {
        let path = self.lock_file(key);
        self.checked_for_write(&path)?;
        if let Some(parent) = path.parent() {
            crate::state::ensure_dir(parent, &self.warn()).map_err(write_err(parent))?;
        }
        // Written whole under a name of its own, then linked into place: the lock's name
        // never names an empty file (a process killed between making the lock and writing
        // it left a lock that named nobody, said to be "already running", that no exit
        // cleanup matched). A full disk fails the write before anything is taken.
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        remove_dead_takings(&path, &name);
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.taking",
            std::process::id(),
            holder.lease_id
        ));
        let text = serde_json::to_string(holder).unwrap_or_default();
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(write_err(&path)(e));
        }
        crate::hooks::crash_point("lock", "taking");
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            // A filesystem without hard links (vfat, some network mounts): made in place.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
                lock_in_place(&path, &text)
            }
            Err(e) => Err(write_err(&path)(e)),
        }
    }
    fn lock_read(&self, key: &str) -> Result<Slot> {
        let path = self.lock_file(key);
        self.checked(&path)?;
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Slot::Held(serde_json::from_str(&t).ok().map(|h| Holder {
                lock: key.to_string(),
                ..h
            }))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Slot::Free),
            Err(_) => Ok(Slot::Held(None)),
        }
    }
    fn lock_remove(&self, key: &str, lease_id: Option<&str>, _expired_only: bool) -> Result<()> {
        // A release frees only its own taking: a run whose lock was broken and taken must
        // not, on its way out, remove the lock of the run that took it. (A read, then the
        // removal: a break in between is the file store's remaining race.)
        if let Some(lease) = lease_id {
            if !self.lock_renew(key, lease)? {
                return Ok(());
            }
        }
        self.locks_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.lock_file(key));
        match std::fs::remove_file(self.lock_file(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(write_err(&self.lock_file(key))(e))
            }
            _ => Ok(()),
        }
    }
    fn lock_renew(&self, key: &str, lease_id: &str) -> Result<bool> {
        // Whether this taking still holds it: a file gone, or naming another taking, says
        // no; a file that cannot be read says nothing (an error, not "taken").
        let path = self.lock_file(key);
        let cannot_read = |e: std::io::Error| crate::error::Error::State {
            message: format!("cannot read the lock {}: {e}", path.display()),
            help: "check the state directory's permissions and disk".into(),
        };
        let mut read = self.locks_read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = read.get(&path) {
            match still_there(&path, file) {
                Ok(meta) => {
                    let text = read_whole(file, meta.len()).map_err(cannot_read)?;
                    return Ok(names_lease(&text, lease_id));
                }
                // Nothing at the path (the file moved away, still linked elsewhere): the
                // path says whether it is held, so it is read anew, as when removed.
                Err(Lost::Unknown(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(cannot_read(e))
                }
                // Removed, or another file (the lock broken and taken again): read anew.
                Err(_) => {
                    read.remove(&path);
                }
            }
        }
        self.checked(&path)?;
        let Some((file, meta)) = open_regular(&path).map_err(cannot_read)? else {
            return Ok(false);
        };
        let text = read_whole(&file, meta.len()).map_err(cannot_read)?;
        let ours = names_lease(&text, lease_id);
        if ours {
            read.insert(path, file);
        }
        Ok(ours)
    }
    fn lock_holders(&self) -> Result<Vec<Holder>> {
        self.checked(&self.dir.join("locks"))?;
        Ok(std::fs::read_dir(self.dir.join("locks"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let lock = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".lock")?
                    .to_string();
                let text = std::fs::read_to_string(&path).ok()?;
                let holder: Holder = serde_json::from_str(&text).ok()?;
                Some(Holder { lock, ..holder })
            })
            .collect())
    }
    fn for_heartbeat(&self) -> Result<super::Store> {
        Ok(std::sync::Arc::new(
            Files::new(&self.dir, self.say.clone()).waiting(self.wait),
        ))
    }
    fn lock_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.lock_file(key))
    }
}

impl ApprovalStore for Files {
    fn approval_put_request(&self, run_id: &str, request: &str) -> Result<()> {
        let dir = self.approvals();
        self.checked_for_write(&dir)?;
        crate::state::ensure_dir(&dir, &self.warn()).map_err(write_err(&dir))?;
        let decision = self.decision_path(run_id);
        if decision.exists() {
            std::fs::remove_file(&decision).map_err(write_err(&decision))?;
        }
        crate::state::write(&self.request_path(run_id), request.as_bytes(), &self.warn())
            .map_err(write_err(&self.request_path(run_id)))
    }
    fn approval_request(&self, run_id: &str) -> Result<Option<String>> {
        Ok(self
            .read_optional(&self.request_path(run_id))?
            .map(|t| super::with_login(t, None)))
    }
    fn approval_decision(&self, run_id: &str) -> Result<Option<String>> {
        Ok(self
            .read_optional(&self.decision_path(run_id))?
            .map(|t| super::with_login(t, None)))
    }
    fn approval_put_decision(&self, run_id: &str, decision: &str) -> Result<bool> {
        // Written whole to a file of its own, then linked into place: the link is atomic and
        // fails if a decision exists, so the first decision wins and none is read half
        // written.
        let dir = self.approvals();
        self.checked_for_write(&dir)?;
        crate::state::ensure_dir(&dir, &self.warn()).map_err(write_err(&dir))?;
        let path = self.decision_path(run_id);
        // Made on the request on file, or nothing: one filed since is not closed by it.
        let filed = self.read_optional(&self.request_path(run_id))?;
        if !filed.is_some_and(|request| super::same_request(&request, decision)) {
            return Ok(false);
        }
        let tmp = dir.join(format!(
            "{run_id}.decision.{}",
            uuid::Uuid::new_v4().simple()
        ));
        crate::state::write(&tmp, decision.as_bytes(), &self.warn()).map_err(write_err(&tmp))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // The decision's name, durable: a power loss must not take back an approval
                // the approver saw taken.
                crate::state::sync_dir(&dir, &self.warn()).map_err(write_err(&path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(write_err(&path)(e)),
        }
    }
}

/// Appends `line` and its newline in one write to a file of `len` bytes that ends on a
/// line boundary (`end_on_a_line`, under the file's flock, as every appender holds it). A
/// write that fails part way (a full disk) is cut back: a fragment left behind would have
/// the next append, the same line retried, glued to it, and the file damaged for good.
fn append_line(file: &mut std::fs::File, len: u64, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes).inspect_err(|_| {
        let _ = file.set_len(len);
    })
}

/// The longest last line without its newline that `end_on_a_line` reads to decide on it.
const MAX_TORN: u64 = 16 << 20;

/// Makes the file (`len` bytes, as stated under its flock) end on a line boundary and
/// returns its length, and how many bytes of a
/// fragment it cut (said to the operator by the caller). A last line without its
/// newline is what a power loss mid-write, or a process killed between a line and its
/// newline, leaves: a whole record is ended (it counts: readers parse it), a fragment is
/// cut off (readers already drop a torn last line). Appending after either as it was would
/// glue the next line to it, and every later read would find the file damaged.
fn end_on_a_line(file: &mut std::fs::File, len: u64) -> std::io::Result<(u64, Option<u64>)> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok((0, None));
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok((len, None));
    }
    // Where the last line starts: after the newline before it, read backwards in chunks.
    const CHUNK: u64 = 64 * 1024;
    let mut start = 0;
    let mut end = len;
    while end > 0 && len - end < MAX_TORN {
        let from = end.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (end - from) as usize];
        file.read_exact_at(&mut chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        end = from;
    }
    if len - start > MAX_TORN {
        return Err(std::io::Error::other(format!(
            "its last line has no end and is over {} MiB: repair the file by hand (end or remove that line)",
            MAX_TORN >> 20
        )));
    }
    let mut tail = vec![0u8; (len - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    if serde_json::from_slice::<serde_json::Value>(&tail).is_ok_and(|v| v.is_object()) {
        file.write_all(b"\n")?;
        Ok((len + 1, None))
    } else {
        file.set_len(start)?;
        Ok((start, Some(len - start)))
    }
}

/// Says that a torn last line was cut from `path` before an append.
fn said_cut(warn: &dyn Fn(String), path: &Path, cut: Option<u64>) {
    if let Some(bytes) = cut {
        warn(format!(
            "warning: the last line of {} was a fragment of {bytes} bytes (a write cut short by a crash or a full disk, which no reader counts): it was cut before appending",
            path.display()
        ));
    }
}

/// The hash of the last entry: the last non-empty line, however long, read backwards from the
/// end in chunks (bytes, so a chunk may start inside a character). A last line that is not
/// an entry is an error: the chain is never silently restarted.
fn last_hash(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    // An entry is a few hundred bytes: the first read takes a page, each next one twice as
    // much (every entry read 64 KiB of a long log, or all of a shorter one).
    let mut chunk_len: u64 = 4096;
    let len = file.seek(SeekFrom::End(0))?;
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        // The last line ends at the last non-newline byte; it starts after the newline
        // before it.
        let end = tail.iter().rposition(|b| *b != b'\n' && *b != b'\r');
        if let Some(end) = end {
            if let Some(start) = tail[..end].iter().rposition(|b| *b == b'\n') {
                return super::hash_of(&tail[start + 1..=end]);
            }
        }
        if pos == 0 {
            return match end {
                Some(end) => super::hash_of(&tail[..=end]),
                None => Ok(super::GENESIS.to_string()),
            };
        }
        let from = pos.saturating_sub(chunk_len);
        chunk_len = chunk_len.saturating_mul(2).min(1 << 20);
        let mut chunk = vec![0u8; (pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        pos = from;
    }
}

/// An advisory `flock` held for the life of the value (the file must outlive it).
struct FileLock(std::os::unix::io::RawFd);

impl FileLock {
    fn exclusive(file: &std::fs::File) -> std::io::Result<Self> {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a valid, open file descriptor.
        let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(fd))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor locked in `exclusive`; closing the file would too.
        unsafe {
            libc::flock(self.0, libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_line;
    use crate::store::{AuditStore, JournalStore};

    fn last(path: &std::path::Path) -> Option<String> {
        last_line(path).unwrap().map(|t| t.line)
    }

    fn files(dir: &std::path::Path) -> super::Files {
        let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), "run");
        super::Files::new(dir, say)
    }

    /// A decision, once taken, is named durably in the approvals folder.
    #[test]
    fn an_approval_decision_is_named_durably() {
        use crate::store::ApprovalStore;
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        store
            .approval_put_request("r1", r#"{"nonce":"n1"}"#)
            .unwrap();
        assert!(store
            .approval_put_decision("r1", r#"{"nonce":"n1"}"#)
            .unwrap());
        let approvals = store.approvals();
        assert!(crate::state::SYNCED_DIRS
            .lock()
            .unwrap()
            .contains(&approvals));
        assert!(
            !store
                .approval_put_decision("r1", r#"{"nonce":"n1"}"#)
                .unwrap(),
            "the first one wins"
        );
    }

    /// The audit log's last hash is read from its end a page first, then more: an entry
    /// of any length (up to the 256 KiB limit and past it) is found whole.
    #[test]
    fn the_last_entrys_hash_is_found_whatever_its_length() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let hash_of = |text: &str| {
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(text.as_bytes()).unwrap();
            let mut f = std::fs::File::open(&path).unwrap();
            super::last_hash(&mut f).unwrap()
        };
        assert_eq!(hash_of(""), crate::store::GENESIS);
        assert_eq!(hash_of("{\"hash\":\"a\"}\n"), "a");
        for len in [10, 4000, 4096, 5000, 70_000, 300_000] {
            let long = format!("{{\"pad\":\"{}\",\"hash\":\"b\"}}", "x".repeat(len));
            assert_eq!(
                hash_of(&format!("{{\"hash\":\"a\"}}\n{long}\n")),
                "b",
                "{len}"
            );
            assert_eq!(hash_of(&format!("{long}\n\n")), "b", "{len}, alone");
            let before = format!("{{\"pad\":\"{}\",\"hash\":\"a\"}}\n", "y".repeat(len));
            assert_eq!(
                hash_of(&format!("{before}{{\"hash\":\"c\"}}\n")),
                "c",
                "{len}, after"
            );
        }
    }

    /// Before: a sync opened the file again. Lines appended to a journal or the audit log
    /// that was then replaced (or removed) were "synced" through the file now at the path,
    /// and the run went on as if they were on disk.
    #[test]
    fn a_sync_goes_through_the_appends_descriptor_and_refuses_a_replaced_or_removed_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let journal = dir.path().join("runs/r1.jsonl");
        store.journal_append("r1", "{\"a\":1}", false).unwrap();
        store.journal_append("r1", "{\"a\":2}", false).unwrap();
        store.journal_sync("r1").unwrap();
        // Replaced between the append and its sync.
        store.journal_append("r1", "{\"a\":3}", false).unwrap();
        let other = dir.path().join("runs/other");
        std::fs::write(&other, "{\"a\":1}\n").unwrap();
        std::fs::rename(&other, &journal).unwrap();
        let e = store.journal_sync("r1").unwrap_err().to_string();
        assert!(e.contains("another file took its place"), "{e}");
        // Asked again (a writer retries), it still fails, and nothing more is written: a
        // new descriptor would sync the replacement and say nothing of the lines lost.
        let before = std::fs::read_to_string(&journal).unwrap();
        let e = store.journal_append("r1", "{\"a\":4}", true).unwrap_err();
        assert!(e.is_final(), "{e}");
        assert_eq!(std::fs::read_to_string(&journal).unwrap(), before);
        let e = store.journal_sync("r1").unwrap_err().to_string();
        assert!(
            e.contains("could not be made durable (another file took its place"),
            "{e}"
        );
        // A durable append after an unsynced one, the file replaced between them.
        let store = files(dir.path());
        store.journal_append("r1", "{\"a\":4}", false).unwrap();
        std::fs::write(&other, "").unwrap();
        std::fs::rename(&other, &journal).unwrap();
        let e = store
            .journal_append("r1", "{\"a\":5}", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another file took its place"), "{e}");
        // The audit log, removed between an entry and its sync.
        let mut entry = |prev: &str| Ok(format!("{{\"prev\":\"{prev}\"}}"));
        store.audit_append(&mut entry, false).unwrap();
        std::fs::remove_file(dir.path().join("audit.jsonl")).unwrap();
        assert!(store.audit_sync().is_err());
        assert!(store.audit_sync().is_err());
        // Nothing held (all synced): a sync is still refused for a file that is gone.
        let store = files(dir.path());
        store.audit_append(&mut entry, true).unwrap();
        std::fs::remove_file(dir.path().join("audit.jsonl")).unwrap();
        assert!(store.audit_sync().is_err());
    }

    /// Before: every append opened its file again, after a stat of every folder from the
    /// state directory down (400-odd stats and 60 opens a rotation). Now a file is opened
    /// on its first append and held: later appends and syncs go through that descriptor,
    /// once a stat says the file at the path is still the one held.
    #[test]
    fn a_file_is_opened_once_for_all_its_appends_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let mut entry = |prev: &str| Ok(format!("{{\"prev\":\"{prev}\",\"hash\":\"h\"}}"));
        for i in 0..5 {
            store
                .journal_append("r1", &format!("{{\"n\":{i}}}"), i % 2 == 0)
                .unwrap();
            store.audit_append(&mut entry, i == 4).unwrap();
        }
        store.journal_sync("r1").unwrap();
        store.audit_sync().unwrap();
        assert_eq!(
            *store.opened.lock().unwrap(),
            [
                dir.path().join("runs/r1.jsonl"),
                dir.path().join("audit.jsonl")
            ]
        );
        let journal = std::fs::read_to_string(dir.path().join("runs/r1.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 5);
    }

    /// A held file replaced or removed during the run, its lines all synced, stops its
    /// appends for good: the rest is not written to the replacement, nor to a file made
    /// again at the path. Before, a journal removed while a write was out was made again
    /// from its next line and the run ended "succeeded"; an audit log removed began a new
    /// chain from nothing that `audit verify` called whole (found by a cold review). A held
    /// file loosened to others is tightened again, as an open tightens it.
    #[test]
    fn a_held_file_replaced_or_removed_during_the_run_takes_nothing_more() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let journal = dir.path().join("runs/r1.jsonl");
        store.journal_append("r1", "{\"a\":1}", true).unwrap();
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
        store.journal_append("r1", "{\"a\":2}", true).unwrap();
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Replaced, all its lines synced: refused, the replacement untouched, for good.
        let other = dir.path().join("runs/other");
        std::fs::write(&other, "{\"b\":1}\n").unwrap();
        std::fs::rename(&other, &journal).unwrap();
        for _ in 0..2 {
            let e = store.journal_append("r1", "{\"a\":3}", true).unwrap_err();
            assert!(
                matches!(e, crate::error::Error::NotDurable { .. })
                    && e.to_string().contains("another file took its place"),
                "{e}"
            );
        }
        assert_eq!(std::fs::read_to_string(&journal).unwrap(), "{\"b\":1}\n");
        // The audit log removed, all its entries synced: refused, and no log made again.
        let log = dir.path().join("audit.jsonl");
        let mut entry = |prev: &str| Ok(format!("{{\"prev\":\"{prev}\"}}"));
        store.audit_append(&mut entry, true).unwrap();
        std::fs::remove_file(&log).unwrap();
        let e = store.audit_append(&mut entry, true).unwrap_err();
        assert!(e.to_string().contains("removed during the run"), "{e}");
        assert!(!log.exists());
        // A link in a journal's place before its first append: refused, not written through.
        let elsewhere = dir.path().join("elsewhere.jsonl");
        std::fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("runs/r2.jsonl")).unwrap();
        let e = store.journal_append("r2", "{\"a\":4}", true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "");
    }

    /// A held file whose path cannot be looked at for now (its folder moved aside, a file
    /// in the folder's place) is not taken for lost: appends and syncs fail and may be
    /// tried again, and once the folder is back the lines held are synced with the next.
    #[test]
    fn a_held_file_out_of_sight_is_tried_again_not_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let (runs, aside) = (dir.path().join("runs"), dir.path().join("runs.aside"));
        store.journal_append("r1", "{\"a\":1}", false).unwrap();
        // Moved aside, and moved aside with a file in the folder's place.
        for in_its_place in [false, true] {
            std::fs::rename(&runs, &aside).unwrap();
            if in_its_place {
                std::fs::write(&runs, "not a folder").unwrap();
            }
            let e = store.journal_append("r1", "{\"a\":2}", true).unwrap_err();
            assert!(!e.is_final(), "{e}");
            let e = store.journal_sync("r1").unwrap_err();
            assert!(!e.is_final(), "{e}");
            if in_its_place {
                std::fs::remove_file(&runs).unwrap();
            }
            std::fs::rename(&aside, &runs).unwrap();
        }
        store.journal_append("r1", "{\"a\":2}", true).unwrap();
        assert_eq!(
            std::fs::read_to_string(runs.join("r1.jsonl")).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        assert_eq!(store.opened.lock().unwrap().len(), 1);
    }

    /// A line written, then its file out of sight before its sync: the error is final. A
    /// retryable one reads as "not stored", and a caller that keeps the entry for later (the
    /// auditor does) would write it a second time.
    #[test]
    fn a_line_written_but_not_synced_is_never_reported_as_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (state, aside) = (dir.path().join("state"), dir.path().join("aside"));
        let store = files(&state);
        let mut first = |prev: &str| Ok(format!("{{\"prev\":\"{prev}\",\"hash\":\"a\"}}"));
        store.audit_append(&mut first, true).unwrap();
        let mut second = |prev: &str| {
            // Under the log's flock, just before the line is written.
            std::fs::rename(&state, &aside).unwrap();
            Ok(format!("{{\"prev\":\"{prev}\",\"hash\":\"b\"}}"))
        };
        let e = store.audit_append(&mut second, true).unwrap_err();
        assert!(e.is_final(), "{e}");
        std::fs::rename(&aside, &state).unwrap();
        let log = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2, "{log}");
    }

    /// Every fenced append asks whether the run's lease still holds: the lock file is read
    /// through a descriptor held since its first read (before, it was checked and opened
    /// each time). What it says is read anew every time: a lock rewritten in place, broken
    /// and taken again (another file), or removed, no longer names this taking.
    #[test]
    fn a_lease_is_confirmed_through_the_lock_files_held_descriptor() {
        use crate::store::LockStore;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let holder = |lease: &str| crate::store::Holder {
            run_id: "r1".into(),
            actor: "alice".into(),
            pid: 1,
            host: "h".into(),
            since: "2026-12-06T00:00:00Z".into(),
            lease_id: lease.into(),
            expires: None,
            expired: false,
            pid_space: String::new(),
            lock: String::new(),
        };
        let path = dir.path().join("locks/k.lock");
        assert!(store.lock_create("k", &holder("mine")).unwrap());
        assert!(store.lock_renew("k", "mine").unwrap());
        assert!(store.lock_renew("k", "mine").unwrap());
        assert!(!store.lock_renew("k", "theirs").unwrap());
        assert_eq!(store.locks_read.lock().unwrap().len(), 1);
        // Rewritten in place: the same file, naming another taking.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("mine", "them1");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(!store.lock_renew("k", "mine").unwrap());
        // Broken and taken again: another file at the path.
        std::fs::remove_file(&path).unwrap();
        let other = files(dir.path());
        assert!(other.lock_create("k", &holder("mine2")).unwrap());
        assert!(!store.lock_renew("k", "mine").unwrap());
        assert!(store.lock_renew("k", "mine2").unwrap());
        // Moved away (still linked elsewhere): nothing at the path holds it.
        std::fs::rename(&path, dir.path().join("moved.lock")).unwrap();
        assert!(!store.lock_renew("k", "mine2").unwrap());
        assert!(store.locks_read.lock().unwrap().is_empty());
        std::fs::rename(dir.path().join("moved.lock"), &path).unwrap();
        assert!(store.lock_renew("k", "mine2").unwrap());
        // Released by its holder: not held open after.
        store.lock_remove("k", Some("mine2"), false).unwrap();
        assert!(store.locks_read.lock().unwrap().is_empty());
        assert!(other.lock_create("k", &holder("mine2")).unwrap());
        assert!(store.lock_renew("k", "mine2").unwrap());
        // Removed.
        std::fs::remove_file(&path).unwrap();
        assert!(!store.lock_renew("k", "mine2").unwrap());
        // A FIFO in the lock's place is refused, not read (the read would block).
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(store.lock_renew("k", "mine2").is_err());
        }
    }

    /// Threads of one process share a file's descriptor, and a flock does not keep apart
    /// two users of one descriptor: appends to one file take turns in the process too. The
    /// audit chain, whose every entry names the hash of the one before, stays one chain.
    #[test]
    fn appends_from_many_threads_keep_the_audit_chain_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(files(dir.path()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let mut entry = |prev: &str| {
                            Ok(format!(
                                "{{\"prev\":\"{prev}\",\"hash\":\"{t}-{i}\",\"pad\":\"{}\"}}",
                                "x".repeat(3000)
                            ))
                        };
                        store.audit_append(&mut entry, i % 5 == 0).unwrap();
                        store
                            .journal_append("r1", &format!("{{\"t\":{t},\"i\":{i}}}"), false)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let mut prev = crate::store::GENESIS.to_string();
        for line in log.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["prev"], prev.as_str());
            prev = v["hash"].as_str().unwrap().to_string();
        }
        assert_eq!(log.lines().count(), 200);
        let journal = std::fs::read_to_string(dir.path().join("runs/r1.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 200);
        assert!(journal
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }

    /// A process appending to many journals does not hold them all open: those whose
    /// lines are synced are let go; those with lines to sync are kept for their sync.
    #[test]
    fn only_files_with_lines_to_sync_are_kept_open_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let held = |store: &super::Files| store.held.lock().unwrap().len();
        for i in 0..100 {
            store.journal_append(&format!("d{i}"), "{}", true).unwrap();
        }
        assert!(held(&store) <= super::MAX_HELD, "{}", held(&store));
        let store = files(dir.path());
        for i in 0..40 {
            store.journal_append(&format!("u{i}"), "{}", false).unwrap();
        }
        assert_eq!(held(&store), 40);
        for i in 0..40 {
            store.journal_sync(&format!("u{i}")).unwrap();
        }
    }

    /// A slot a thread has taken but not yet written through (no lines to sync yet) stays
    /// in the map when the map is full: let go, the thread's line would land through a
    /// descriptor no later sync of that journal reaches, and the sync would say it held.
    #[test]
    fn a_slot_in_a_threads_hands_is_kept_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        store.journal_append("busy", "{}", true).unwrap();
        let path = dir.path().join("runs/busy.jsonl");
        let taken = store.slot(&path);
        for i in 0..=super::MAX_HELD {
            store
                .journal_append(&format!("after-{i}"), "{}", true)
                .unwrap();
        }
        let held = store.held.lock().unwrap();
        let kept = held.get(&path).expect("the slot in use was let go");
        assert!(std::sync::Arc::ptr_eq(kept, &taken));
    }

    /// Threads appending to many journals at once, past the limit, while slots are let go:
    /// a slot in a thread's hands or with lines to sync is never closed under it, so every
    /// journal ends with each of its lines once, in order, and every sync is kept.
    #[test]
    fn slots_let_go_past_the_limit_lose_no_line_between_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(files(dir.path()));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for round in 0..4 {
                        for j in 0..20 {
                            let run = format!("t{t}-{j}");
                            let line = format!(r#"{{"round":{round}}}"#);
                            store.journal_append(&run, &line, false).unwrap();
                            if j % 3 == 0 {
                                store.journal_sync(&run).unwrap();
                            }
                        }
                    }
                    for j in 0..20 {
                        store.journal_sync(&format!("t{t}-{j}")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for t in 0..6 {
            for j in 0..20 {
                let path = dir.path().join(format!("runs/t{t}-{j}.jsonl"));
                let text = std::fs::read_to_string(&path).unwrap();
                let rounds: Vec<_> = text
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["round"].clone())
                    .collect();
                assert_eq!(rounds, [0, 1, 2, 3], "{}", path.display());
            }
        }
        assert!(store.failed.lock().unwrap().is_empty());
        // Every line synced and no thread left: once the map is full again, they all go.
        for i in 0..=super::MAX_HELD {
            store
                .journal_append(&format!("after-{i}"), "{}", true)
                .unwrap();
        }
        let held = store.held.lock().unwrap();
        assert!(
            held.keys()
                .all(|p| !p.to_string_lossy().contains("/runs/t")),
            "{:?}",
            held.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_last_line_is_read_from_the_end_whatever_the_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        assert_eq!(last(&path), None);
        // Many lines before it, a last line longer than the first window, a trailing newline.
        let long = format!(
            "{{\"type\":\"run_finished\",\"pad\":\"{}\"}}",
            "x".repeat(20_000)
        );
        let text = format!("{}{long}\n\n", "{\"type\":\"step\"}\n".repeat(5_000));
        std::fs::write(&path, text).unwrap();
        assert_eq!(last(&path).as_deref(), Some(long.as_str()));
        // One line, no newline.
        std::fs::write(&path, "{\"only\":1}").unwrap();
        assert_eq!(last(&path).as_deref(), Some("{\"only\":1}"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(last(&path).as_deref(), Some(""));
        // A FIFO in a journal's place is refused, not opened (the open would block).
        let fifo = dir.path().join("fifo.jsonl");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(last_line(&fifo).is_err());
        }
    }

    /// A run's start asks of every journal whether its run is unfinished. A journal found
    /// settled is remembered (its length and change time) and not read again while it keeps
    /// them; one that changed (the run reopened: a resume, a rollback) is read again,
    /// whatever the index says. A journal whose last line has no newline is not remembered:
    /// the next append ends or cuts that line first.
    #[test]
    fn a_settled_journal_is_read_again_only_once_it_has_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path());
        let settles = crate::ledger::settles;
        let done = r#"{"type":"run_finished","status":"succeeded"}"#;
        let failed = r#"{"type":"run_finished","status":"failed"}"#;
        for (id, last) in [("r1", done), ("r2", failed), ("r3", done)] {
            store
                .journal_append(id, r#"{"type":"run_started"}"#, false)
                .unwrap();
            store.journal_append(id, last, false).unwrap();
        }
        let journal = |id: &str| dir.path().join(format!("runs/{id}.jsonl"));
        // A settling record whose newline a crash kept from the disk: settled, but not
        // remembered (the next append ends that line first: the file changes under it).
        let torn = format!("{}\n{done}", r#"{"type":"run_started"}"#);
        std::fs::write(journal("r4"), &torn).unwrap();
        let reads = || {
            let all: Vec<String> = store.trace.lock().unwrap().drain(..).collect();
            all.into_iter()
                .filter_map(|t| t.strip_prefix("read the end of ").map(str::to_string))
                .collect::<Vec<_>>()
        };
        reads();
        assert_eq!(store.unsettled_runs(&settles).unwrap(), ["r2"]);
        assert_eq!(reads(), ["r1", "r2", "r3", "r4"]);
        let line = |id: &str| {
            let s = super::Seen::of(&std::fs::metadata(journal(id)).unwrap());
            format!("{id} {} {} {}\n", s.len, s.ctime, s.ctime_ns)
        };
        let index = dir.path().join("settled-runs");
        assert_eq!(
            std::fs::read_to_string(&index).unwrap(),
            format!("{}{}", line("r1"), line("r3"))
        );
        // Not read again: only what is not known settled.
        assert_eq!(store.unsettled_runs(&settles).unwrap(), ["r2"]);
        assert_eq!(reads(), ["r2", "r4"]);
        // r3 reopened: its new line is read, and it is unfinished again.
        store
            .journal_append("r3", r#"{"type":"run_resumed"}"#, false)
            .unwrap();
        // r4 resumed after its crash: its line is ended, and a new one follows.
        store
            .journal_append("r4", r#"{"type":"run_resumed"}"#, false)
            .unwrap();
        assert_eq!(store.unsettled_runs(&settles).unwrap(), ["r2", "r3", "r4"]);
        assert_eq!(reads(), ["r2", "r3", "r4"]);
        // Its change time moved, its length did not: read again.
        let mut s = super::Seen::of(&std::fs::metadata(journal("r1")).unwrap());
        s.ctime -= 1;
        std::fs::write(&index, format!("r1 {} {} {}\n", s.len, s.ctime, s.ctime_ns)).unwrap();
        store.unsettled_runs(&settles).unwrap();
        assert!(reads().contains(&"r1".to_string()));
        // The index is only a shortcut: cut short, garbled, unreadable or gone, every
        // journal is read.
        for garbled in [
            line("r1").trim_end().to_string(),
            "r1 12x 0 0\n".into(),
            "\u{ff}r1\n".into(),
        ] {
            std::fs::write(&index, garbled).unwrap();
            store.unsettled_runs(&settles).unwrap();
            assert!(reads().contains(&"r1".to_string()));
        }
        std::fs::write(&index, [0xff_u8, 0xfe]).unwrap();
        assert_eq!(store.unsettled_runs(&settles).unwrap(), ["r2", "r3", "r4"]);
        assert!(reads().contains(&"r1".to_string()));
        std::fs::remove_file(&index).unwrap();
        store.unsettled_runs(&settles).unwrap();
        assert!(reads().contains(&"r1".to_string()));
    }
}
