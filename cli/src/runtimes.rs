//! Starting a reporter on the adapter the user picked.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tidings::nats::NatsConfig;
use tidings::{Reporter, ReporterBuilder, ShutdownSummary};

use crate::demo::{Outage, RuntimeChoice};

/// A running reporter and how to shut it down on its adapter.
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

/// Starts `builder` on `choice`.
pub fn start(choice: RuntimeChoice, builder: ReporterBuilder) -> Result<Started, String> {
    match choice {
        RuntimeChoice::Blocking => {
            let (reporter, guard) = tidings::blocking::start(builder).map_err(|e| e.to_string())?;
            Ok(Started {
                reporter,
                shutdown: Box::new(move || guard.shutdown()),
            })
        }
        RuntimeChoice::Tokio | RuntimeChoice::Smol => Err(format!(
            "the {choice:?} runtime is not available in this build yet"
        )),
    }
}

/// Adds the chosen adapter's NATS sink (behind the outage switch).
pub fn add_nats_sink(
    choice: RuntimeChoice,
    builder: ReporterBuilder,
    config: NatsConfig,
    down: Arc<AtomicBool>,
) -> Result<ReporterBuilder, String> {
    let _ = (config, down);
    match choice {
        RuntimeChoice::Blocking | RuntimeChoice::Tokio | RuntimeChoice::Smol => Err(format!(
            "NATS sinks for {choice:?} are not available in this build yet"
        )),
    }
    .map(|()| builder)
}

#[allow(dead_code)]
fn outage<S>(inner: S, down: Arc<AtomicBool>) -> Outage<S> {
    Outage { inner, down }
}
