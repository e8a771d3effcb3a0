//! [`Harness`] implementations, one per adapter configuration.

use std::future::Future;
use std::sync::Mutex;

use tidings_core::nats::NatsConfig;
use tidings_core::{ConfigError, Reporter, ReporterBuilder, Sink};

use crate::harness::{Harness, Task};

/// The blocking-thread adapter.
pub struct Blocking {
    guards: Mutex<Vec<tidings_blocking::Guard>>,
    runtimes: Mutex<Vec<tidings_blocking::ThreadRuntime>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Harness for Blocking {
    const NAME: &'static str = "blocking";
    const HAS_RUNTIME: bool = false;

    fn new() -> Self {
        Blocking {
            guards: Mutex::new(Vec::new()),
            runtimes: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, builder: ReporterBuilder) -> Reporter {
        let (reporter, guard) = tidings_blocking::start(builder).expect("start blocking reporter");
        self.runtimes.lock().unwrap().push(guard.runtime().clone());
        self.guards.lock().unwrap().push(guard);
        reporter
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }

    fn spawn(&self, task: Task) {
        let t = std::thread::spawn(move || futures_lite::future::block_on(task));
        self.threads.lock().unwrap().push(t);
    }

    fn nats_sink(&self, config: NatsConfig) -> Result<Box<dyn Sink>, ConfigError> {
        let _ = config;
        Err(ConfigError::new(
            "nats",
            "the sync NATS sink is not wired yet",
        ))
    }

    fn detach_guards(&self) {
        for g in self.guards.lock().unwrap().drain(..) {
            g.detach();
        }
    }

    fn drop_runtime(self) {
        self.detach_guards();
    }

    fn live_tasks(&self) -> usize {
        let threads = self.threads.lock().unwrap();
        let test_threads = threads.iter().filter(|t| !t.is_finished()).count();
        let workers: usize = self
            .runtimes
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.live_threads())
            .sum();
        test_threads + workers
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        for t in self.threads.get_mut().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}
