//! The JSON-lines file as a primary sink: the embedded default when no
//! NATS server is configured. The file itself ([`JsonLinesFile`]) is the
//! fallback's; this is only the [`Sink`] face of it.

use std::path::Path;

use crate::fallback::{Fallback, FallbackError, JsonLinesFile, Stderr};
use crate::report::Report;
use crate::sink::{Ack, Batch, Sink, SinkError, SinkFuture};

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
            Err(e) => {
                rescue_orphans(e.orphaned());
                SinkError::unavailable(e.to_string()).for_all(batch.len())
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        let result = self.file.flush().map_err(|e| {
            rescue_orphans(e.orphaned());
            SinkError::unavailable(e.to_string())
        });
        Box::pin(std::future::ready(result))
    }
}

/// Reports the file sink had delivered into a file that was deleted and
/// cannot be restored: written to stderr, the only place left.
fn rescue_orphans(orphaned: &[Report]) {
    if orphaned.is_empty() {
        return;
    }
    let reports: Vec<&Report> = orphaned.iter().collect();
    if Stderr.spill(&reports).is_err() {
        eprintln!(
            "tidings: LOST {} report(s) delivered to a file that was deleted",
            reports.len()
        );
    }
}
