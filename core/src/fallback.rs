//! The local fallback: where a report goes when it cannot be delivered.
//!
//! A fallback is **synchronous and local** on purpose: it is what runs when
//! everything else is gone — the network is down, the runtime is being torn
//! down, a `Drop` impl is running. It must not need an executor.
//!
//! The reporter chains the configured fallback with [`Stderr`]: if the
//! configured fallback fails (disk full, permission denied), the report is
//! written to stderr instead; only if that fails too is it counted as *lost*.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::report::Report;
use crate::sink::{Ack, Batch, Sink, SinkError, SinkFuture};
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
#[derive(Debug)]
pub struct FallbackError {
    location: String,
    source: io::Error,
}

impl FallbackError {
    /// An error writing to `location`.
    pub fn new(location: impl Into<String>, source: io::Error) -> Self {
        FallbackError {
            location: location.into(),
            source,
        }
    }

    /// The underlying I/O error kind (e.g. `StorageFull` for a full disk).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
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
/// sinks could not take; wrapped in [`JsonLinesSink`] it is the primary
/// destination when no NATS server is configured. Each spill is one `write`
/// of whole lines on a file opened in append mode, so concurrent writers do
/// not interleave partial lines. By default data reaches the OS (survives a
/// crash of the process) but is not fsynced (an OS crash may lose the last
/// seconds); [`JsonLinesFile::sync_each_write`] fsyncs every spill.
///
/// ```
/// use tidings_core::{Fallback, JsonLinesFile, Report};
/// let dir = tempfile::tempdir().unwrap();
/// let file = JsonLinesFile::open(dir.path().join("spill.jsonl")).unwrap();
/// let report = Report::error("disk", "full");
/// file.spill(&[&report]).unwrap();
/// let (back, bad_lines) = JsonLinesFile::read(file.path()).unwrap();
/// assert_eq!(back, vec![report]);
/// assert_eq!(bad_lines, 0);
/// ```
pub struct JsonLinesFile {
    path: PathBuf,
    file: Mutex<File>,
    sync_each_write: bool,
}

impl JsonLinesFile {
    /// Opens (creating it and its parent directories if needed) `path` for
    /// appending. Fails now, at configuration time, if it cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FallbackError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| FallbackError::new(&shown, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| FallbackError::new(&shown, e))?;
        Ok(JsonLinesFile {
            path,
            file: Mutex::new(file),
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

    /// Appends `reports` as JSON lines.
    pub fn append(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        let mut buf = Vec::with_capacity(reports.len() * 512);
        for r in reports {
            r.write_json(&mut buf);
            buf.push(b'\n');
        }
        let mut file = lock(&self.file);
        file.write_all(&buf)
            .and_then(|()| {
                if self.sync_each_write {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| FallbackError::new(self.path.display().to_string(), e))
    }

    /// Reads a JSON-lines file back: the reports that parse, and how many
    /// lines did not (torn or corrupt lines are skipped, never fatal).
    pub fn read(path: impl AsRef<Path>) -> io::Result<(Vec<Report>, usize)> {
        let reader = BufReader::new(File::open(path)?);
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
}

impl Fallback for JsonLinesFile {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        self.append(reports)
    }

    fn flush(&self) -> Result<(), FallbackError> {
        lock(&self.file)
            .sync_data()
            .map_err(|e| FallbackError::new(self.location(), e))
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

/// The JSON-lines file as a primary [`Sink`]: the embedded default when no
/// NATS server is configured. Its name is `"file"`; its ack is
/// [`Ack::Written`].
#[derive(Debug)]
pub struct JsonLinesSink {
    file: JsonLinesFile,
}

impl JsonLinesSink {
    /// A sink appending to `path` (created if needed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FallbackError> {
        Ok(JsonLinesSink {
            file: JsonLinesFile::open(path)?,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Sink for JsonLinesSink {
    fn name(&self) -> &str {
        "file"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        let reports: Vec<&Report> = batch.iter().collect();
        let result = match self.file.append(&reports) {
            Ok(()) => vec![Ok(Ack::Written); batch.len()],
            Err(e) => SinkError::unavailable(e.to_string()).for_all(batch.len()),
        };
        Box::pin(std::future::ready(result))
    }

    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        let result = self
            .file
            .flush()
            .map_err(|e| SinkError::unavailable(e.to_string()));
        Box::pin(std::future::ready(result))
    }
}
