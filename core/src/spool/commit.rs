//! Making writes durable: group commit under
//! [`SyncPolicy::Always`](super::SyncPolicy::Always), the interval-sync
//! thread under [`SyncPolicy::Interval`](super::SyncPolicy::Interval),
//! flushing every file under [`SyncPolicy::None`](super::SyncPolicy::None),
//! and what a failed fsync does (it poisons the spool: from then on
//! durability is refused until it is reopened).
//!
//! Group commit: a writer that needs its write fsynced waits until some
//! caller's fsync covers it. One caller at a time (the leader) fsyncs the
//! active segment and so everything written up to then; the others wait on
//! a condvar and usually find their write covered when they wake, so N
//! concurrent appenders cost about one fsync. Writes are numbered by the
//! writer (`writer.rs`); this file only compares those numbers.
//!
//! Lock order: the writer's `state` before `commit`, never the other way.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::recover::segment_path;
use super::{lock, Inner, Shared, SpoolError};

/// Group-commit bookkeeping. Lock order: `state` before `commit`.
#[derive(Default)]
pub(super) struct Commit {
    /// Every write with a sequence number up to this one is fsynced.
    synced_seq: u64,
    /// A leader is fsyncing now.
    syncing: bool,
    /// Set by a failed fsync; from then on durability is refused.
    poisoned: Option<(io::ErrorKind, String)>,
    pub(super) syncs: u64,
    #[cfg(test)]
    fail_next_sync: bool,
}

impl Shared {
    pub(super) fn check_poisoned(&self) -> Result<(), SpoolError> {
        match &lock(&self.commit).poisoned {
            Some((kind, message)) => Err(self.sync_failed(*kind, message)),
            None => Ok(()),
        }
    }

    fn sync_failed(&self, kind: io::ErrorKind, message: &str) -> SpoolError {
        SpoolError::SyncFailed {
            dir: self.dir.clone(),
            kind,
            message: message.to_owned(),
        }
    }

    pub(super) fn poison(&self, path: &Path, e: &io::Error) -> SpoolError {
        let message = format!("fsync {}: {e}", path.display());
        let err = self.sync_failed(e.kind(), &message);
        lock(&self.commit)
            .poisoned
            .get_or_insert((e.kind(), message));
        self.committed.notify_all();
        err
    }
}

impl Inner {
    /// Returns once every write up to `seq` is fsynced (group commit: one
    /// caller at a time fsyncs everything written so far; the others wait
    /// for it and usually find their write covered).
    pub(super) fn sync_upto(&self, seq: u64) -> Result<(), SpoolError> {
        let mut commit = lock(&self.shared.commit);
        loop {
            if commit.synced_seq >= seq {
                return Ok(());
            }
            if let Some((kind, message)) = &commit.poisoned {
                return Err(self.shared.sync_failed(*kind, message));
            }
            if commit.syncing {
                commit = self
                    .shared
                    .committed
                    .wait(commit)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            commit.syncing = true;
            drop(commit);
            // Writes up to `target` are in the active file or in older
            // segments, which were fsynced when they were retired.
            let (file, target, number) = {
                let state = lock(&self.state);
                (
                    Arc::clone(&state.active.file),
                    state.written_seq,
                    state.active.number,
                )
            };
            #[cfg(test)]
            let result = if std::mem::take(&mut lock(&self.shared.commit).fail_next_sync) {
                Err(io::Error::other("injected fsync failure"))
            } else {
                file.sync_data()
            };
            #[cfg(not(test))]
            let result = file.sync_data();
            commit = lock(&self.shared.commit);
            commit.syncing = false;
            commit.syncs += 1;
            match result {
                Ok(()) => commit.synced_seq = commit.synced_seq.max(target),
                Err(e) => {
                    let path = segment_path(&self.shared.dir, number);
                    commit
                        .poisoned
                        .get_or_insert((e.kind(), format!("fsync {}: {e}", path.display())));
                }
            }
            self.shared.committed.notify_all();
        }
    }

    /// Under [`SyncPolicy::None`](super::SyncPolicy::None) nothing tracks what is unsynced: fsync
    /// every segment file and the directory.
    pub(super) fn sync_all_files(&self) -> Result<(), SpoolError> {
        let (numbers, active) = {
            let state = lock(&self.state);
            let numbers: Vec<u64> = state.segments.keys().copied().collect();
            (numbers, Arc::clone(&state.active.file))
        };
        for number in numbers {
            let path = segment_path(&self.shared.dir, number);
            match File::open(&path).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted meanwhile
                Err(e) => return Err(SpoolError::io("fsync", &path, e)),
            }
        }
        active
            .sync_data()
            .map_err(|e| SpoolError::io("fsync", &self.shared.dir, e))?;
        lock(&self.shared.commit).syncs += 1;
        sync_dir(&self.shared.dir).map_err(|e| SpoolError::io("fsync", &self.shared.dir, e))
    }

    /// The interval-sync thread's body.
    pub(super) fn sync_every(&self, every: Duration) {
        let mut stop = lock(&self.stop);
        loop {
            stop = self
                .stopping
                .wait_timeout(stop, every)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if *stop {
                return;
            }
            drop(stop);
            let seq = lock(&self.state).written_seq;
            if lock(&self.shared.commit).synced_seq < seq {
                if let Err(e) = self.sync_upto(seq) {
                    lock(&self.state).note_error(&e);
                }
            }
            stop = lock(&self.stop);
        }
    }
}

/// Fsyncs a directory, so that file creations in it are durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;
    use crate::spool::SyncPolicy;
    use crate::Report;

    #[test]
    fn a_failed_fsync_refuses_durability_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::Always);
        let first = Report::error("a", "1");
        spool.append(&[&first]).unwrap();
        lock(&spool.inner.shared.commit).fail_next_sync = true;
        let second = Report::error("b", "2");
        let err = spool.append(&[&second]).unwrap_err();
        assert!(matches!(err, SpoolError::SyncFailed { .. }), "{err}");
        // Every later append is refused too, before writing anything.
        let err = spool.append(&[&Report::error("c", "3")]).unwrap_err();
        assert!(matches!(err, SpoolError::SyncFailed { .. }), "{err}");
        assert_eq!(spool.stats().io_errors, 2);
        assert_eq!(spool.stats().appended, 2);
        // The record whose fsync failed was written, but its caller was told
        // it was not (and sends it elsewhere): taken back at once.
        assert_eq!(spool.pending_count(), 1);
        assert_eq!(spool.stats().acked, 1);
        drop(spool);
        // Only the durable record comes back (here the take-back was written
        // too; had it not been, `second` would come back: a duplicate at
        // worst).
        let (spool, recovery) = open(dir.path(), SyncPolicy::Always);
        assert_eq!(recovery.pending_records, spool.pending_count());
        let replayed: Vec<_> = spool.pending().into_iter().map(|(_, r)| r).collect();
        assert_eq!(replayed, vec![first]);
        spool.append(&[&Report::error("d", "4")]).unwrap();
    }
}
