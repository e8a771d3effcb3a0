//! Running a reporter on the adapter the user picked.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tidings::nats::NatsConfig;
use tidings::{Reporter, ReporterBuilder, ShutdownSummary, Sink};

use crate::demo::{Outage, RuntimeChoice};

/// The runtime a demo runs on, created before anything that needs it (the
/// tokio NATS sink connects on it).
pub enum Host {
    /// A background worker thread.
    Blocking,
    /// A multi-thread tokio runtime owned by the demo.
    Tokio(tokio::runtime::Runtime),
    /// smol's global executor.
    Smol,
}

impl Host {
    /// Creates the runtime for `choice`.
    pub fn new(choice: RuntimeChoice) -> Result<Host, String> {
        Ok(match choice {
            RuntimeChoice::Blocking => Host::Blocking,
            RuntimeChoice::Smol => Host::Smol,
            RuntimeChoice::Tokio => Host::Tokio(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a tokio runtime: {e}"))?,
            ),
        })
    }

    /// This runtime's NATS sink, behind the demo's outage switch.
    pub fn nats_sink(
        &self,
        config: NatsConfig,
        down: Arc<AtomicBool>,
    ) -> Result<Box<dyn Sink>, String> {
        Ok(match self {
            Host::Blocking => Box::new(Outage {
                inner: tidings::blocking::NatsSink::connect(config).map_err(|e| e.to_string())?,
                down,
            }),
            Host::Smol => Box::new(Outage {
                inner: tidings::smol::NatsSink::connect(config).map_err(|e| e.to_string())?,
                down,
            }),
            Host::Tokio(rt) => Box::new(Outage {
                inner: rt
                    .block_on(tidings::tokio::NatsSink::connect(config))
                    .map_err(|e| e.to_string())?,
                down,
            }),
        })
    }

    /// Starts `builder` here.
    pub fn start(self, builder: ReporterBuilder) -> Result<Started, String> {
        match self {
            Host::Blocking => {
                let (reporter, guard) =
                    tidings::blocking::start(builder).map_err(|e| e.to_string())?;
                Ok(Started {
                    reporter,
                    shutdown: Box::new(move || guard.shutdown_blocking()),
                })
            }
            Host::Smol => {
                let (reporter, guard) = tidings::smol::start(builder).map_err(|e| e.to_string())?;
                Ok(Started {
                    reporter,
                    shutdown: Box::new(move || smol::block_on(guard.shutdown())),
                })
            }
            Host::Tokio(rt) => {
                let (reporter, guard) = tidings::tokio::start_on(rt.handle().clone(), builder)
                    .map_err(|e| e.to_string())?;
                Ok(Started {
                    reporter,
                    shutdown: Box::new(move || {
                        let summary = rt.block_on(guard.shutdown());
                        drop(rt);
                        summary
                    }),
                })
            }
        }
    }
}

/// A running reporter and how to shut it down on its runtime.
pub struct Started {
    pub reporter: Reporter,
    shutdown: Box<dyn FnOnce() -> ShutdownSummary>,
}

impl Started {
    /// Runs the shutdown protocol with the configured deadline.
    pub fn shutdown(self) -> ShutdownSummary {
        (self.shutdown)()
    }
}
