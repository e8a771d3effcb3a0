//! The local fallback: where a report goes when it cannot be delivered.
//!
//! A fallback is **synchronous and local** on purpose: it is what runs when
//! everything else is gone — the network is down, the runtime is being torn
//! down, a `Drop` impl is running. It must not need an executor.
//!
//! The reporter chains the configured fallback with [`Stderr`]: if the
//! configured fallback fails (disk full, permission denied), the report is
//! written to stderr instead; only if that fails too is it counted as *lost*.
//!
//! The same file is the embedded default sink when no NATS server is
//! configured: [`JsonLinesSink`](crate::JsonLinesSink), in `file_sink.rs`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::report::Report;
use crate::sync::{lock, Mutex};

/// A synchronous, local place to put reports that could not be delivered.
///
/// Contract: [`spill`](Fallback::spill) either stores every report it is
/// given and returns `Ok`, or returns `Err` (in which case the caller treats
/// all of them as not stored and tries the next fallback). It must not block
/// on the network, must not need an async runtime, and must be callable from
/// any thread, including from `Drop` impls during runtime teardown.
pub trait Fallback: Send + Sync + 'static {
    /// Where spilled reports go, for humans (a path, `"stderr"`).
    fn location(&self) -> String;

    /// Stores `reports`, all or nothing as far as the caller knows.
    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError>;

    /// Makes what was spilled durable to the degree the fallback promises.
    fn flush(&self) -> Result<(), FallbackError> {
        Ok(())
    }
}

/// A fallback could not store reports.
///
/// It may also hand back reports it had stored *earlier* and can no longer
/// keep ([`FallbackError::take_orphaned`]): a [`JsonLinesFile`] whose file
/// was deleted while open, and whose path cannot be restored. The caller
/// must put those somewhere else (the reporter writes them to the next
/// fallback, stderr), or they would be counted as spilled into nothing.
#[derive(Debug)]
pub struct FallbackError {
    location: String,
    source: io::Error,
    orphaned: Vec<Report>,
}

impl FallbackError {
    /// An error writing to `location`.
    pub fn new(location: impl Into<String>, source: io::Error) -> Self {
        FallbackError {
            location: location.into(),
            source,
            orphaned: Vec::new(),
        }
    }

    /// The underlying I/O error kind (e.g. `StorageFull` for a full disk).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// Reports this fallback had stored before and no longer holds; empty
    /// in most errors.
    pub fn take_orphaned(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.orphaned)
    }

    /// The orphaned reports, borrowed (see [`FallbackError::take_orphaned`]).
    pub(crate) fn orphaned(&self) -> &[Report] {
        &self.orphaned
    }

    fn with_orphaned(mut self, orphaned: Vec<Report>) -> Self {
        self.orphaned = orphaned;
        self
    }
}

impl fmt::Display for FallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not write to {}: {}", self.location, self.source)
    }
}

impl std::error::Error for FallbackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Appends reports to a file, one JSON object per line.
///
/// This is tidings' embedded default: as a [`Fallback`] it receives what the
/// sinks could not take; wrapped in [`JsonLinesSink`](crate::JsonLinesSink) it is the primary
/// destination when no NATS server is configured. Each spill is one `write`
/// of whole lines on a file opened in append mode, so concurrent writers do
/// not interleave partial lines. By default data reaches the OS (survives a
/// crash of the process) but is not fsynced (an OS crash may lose the last
/// seconds); [`JsonLinesFile::sync_each_write`] fsyncs every spill.
///
/// **The path keeps naming the file.** Before each write (and at
/// [`flush`](Fallback::flush)) the file checks that its path still names the
/// file it has open. When the file was deleted (a tmp cleaner, an operator
/// removing the directory), the path and its directories are created again
/// and everything the deleted file held is copied into the new one, so no
/// spilled report is left in a file nobody can reach. When the file was
/// *moved* (log rotation: it still has a name), the new file simply starts
/// at the path. If the path cannot be restored, the write fails and the
/// reports the deleted file held are handed back
/// ([`FallbackError::take_orphaned`]) for the next fallback.
///
/// ```
/// use tidings_core::{Fallback, JsonLinesFile, Report};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("spill").join("spill.jsonl");
/// let file = JsonLinesFile::open(&path).unwrap();
/// let first = Report::error("disk", "full");
/// file.spill(&[&first]).unwrap();
///
/// // Someone removes the whole directory while the file is open.
/// std::fs::remove_dir_all(dir.path().join("spill")).unwrap();
/// let second = Report::error("disk", "still full");
/// file.spill(&[&second]).unwrap();
///
/// // Both are at the path again.
/// let (back, bad_lines) = JsonLinesFile::read(&path).unwrap();
/// assert_eq!(back, vec![first, second]);
/// assert_eq!(bad_lines, 0);
/// ```
pub struct JsonLinesFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
    sync_each_write: bool,
}

impl JsonLinesFile {
    /// Opens (creating it and its parent directories if needed) `path` for
    /// appending. Fails now, at configuration time, if it cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FallbackError> {
        let path = path.as_ref().to_path_buf();
        let file = open_at(&path).map_err(|e| FallbackError::new(path.display().to_string(), e))?;
        Ok(JsonLinesFile {
            path,
            file: Mutex::new(Some(file)),
            sync_each_write: false,
        })
    }

    /// Fsync after every spill (survives an OS crash; slower).
    pub fn sync_each_write(mut self, yes: bool) -> Self {
        self.sync_each_write = yes;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: io::Error) -> FallbackError {
        FallbackError::new(self.path.display().to_string(), e)
    }

    /// Appends `reports` as JSON lines.
    pub fn append(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        let mut buf = Vec::with_capacity(reports.len() * 512);
        for r in reports {
            r.write_json(&mut buf);
            buf.push(b'\n');
        }
        let mut open = lock(&self.file);
        let file = self.file_at_path(&mut open)?;
        file.write_all(&buf)
            .and_then(|()| {
                if self.sync_each_write {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| self.error(e))
    }

    /// The open file, made sure to be the one the path names (see the
    /// type's docs): restored with its content if it was deleted.
    fn file_at_path<'a>(&self, open: &'a mut Option<File>) -> Result<&'a mut File, FallbackError> {
        let current = match open.take() {
            Some(file) if names(&self.path, &file) => return Ok(open.insert(file)),
            other => other,
        };
        // Deleted (no name left): what it holds must move with the path.
        // Moved (it still has a name): it is reachable there; start anew.
        let mut carried = Vec::new();
        if let Some(mut old) = current {
            if is_deleted(&old) {
                let read = old
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| old.read_to_end(&mut carried));
                if let Err(e) = read {
                    // Unreadable: nothing can be carried; keep it for a
                    // later attempt rather than pretend it is empty.
                    *open = Some(old);
                    return Err(self.error(e));
                }
            }
        }
        let restored = open_at(&self.path).and_then(|mut file| {
            if !carried.is_empty() {
                file.write_all(&carried)?;
                file.sync_data()?;
            }
            Ok(file)
        });
        match restored {
            Ok(file) => Ok(open.insert(file)),
            Err(e) => {
                // The path cannot be restored: hand back what the deleted
                // file held, so it goes to the next fallback.
                // Reading from memory cannot fail.
                let orphaned = read_lines(&carried[..]).unwrap_or_default().0;
                Err(self.error(e).with_orphaned(orphaned))
            }
        }
    }

    /// Reads a JSON-lines file back: the reports that parse, and how many
    /// lines did not (torn or corrupt lines are skipped, never fatal).
    pub fn read(path: impl AsRef<Path>) -> io::Result<(Vec<Report>, usize)> {
        read_lines(BufReader::new(File::open(path)?))
    }
}

/// The reports of a JSON-lines text, and how many lines did not parse.
fn read_lines(reader: impl BufRead) -> io::Result<(Vec<Report>, usize)> {
    let mut reports = Vec::new();
    let mut bad = 0;
    for line in reader.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Report::from_json(&line) {
            Ok(r) => reports.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((reports, bad))
}

/// Opens `path` for reading and appending, creating it and its directories.
fn open_at(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

/// Whether `path` names the open `file`.
#[cfg(unix)]
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.dev() && at_path.ino() == open.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn names(path: &Path, _file: &File) -> bool {
    path.is_file()
}

/// Whether the open `file` has no name left (deleted while open).
#[cfg(unix)]
fn is_deleted(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().map_or(true, |m| m.nlink() == 0)
}

#[cfg(not(unix))]
fn is_deleted(_file: &File) -> bool {
    true
}

impl Fallback for JsonLinesFile {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        self.append(reports)
    }

    /// Makes sure the path still names the file (restoring it, as before
    /// a write) and fsyncs it.
    fn flush(&self) -> Result<(), FallbackError> {
        let mut open = lock(&self.file);
        let file = self.file_at_path(&mut open)?;
        file.sync_data().map_err(|e| self.error(e))
    }
}

impl fmt::Debug for JsonLinesFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesFile")
            .field("path", &self.path)
            .field("sync_each_write", &self.sync_each_write)
            .finish()
    }
}

/// Writes reports to stderr, one per line, prefixed `tidings-spill: `
/// followed by the report's JSON. The fallback of last resort.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

/// The prefix of every line [`Stderr`] writes.
pub const STDERR_PREFIX: &str = "tidings-spill: ";

impl Fallback for Stderr {
    fn location(&self) -> String {
        "stderr".to_owned()
    }

    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        let mut buf = Vec::with_capacity(reports.len() * 512);
        for r in reports {
            buf.extend_from_slice(STDERR_PREFIX.as_bytes());
            r.write_json(&mut buf);
            buf.push(b'\n');
        }
        // One write of whole lines; stderr is unbuffered.
        io::stderr()
            .lock()
            .write_all(&buf)
            .map_err(|e| FallbackError::new("stderr", e))
    }
}
