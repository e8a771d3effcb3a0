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
        Ok(Box::new(tidings_nats_sync::SyncNatsSink::connect(config)?))
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
            .map(|r| r.live_tasks())
            .sum();
        test_threads + workers
    }

    fn pause(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        for t in self.threads.get_mut().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

/// The smol adapter, on an executor owned by the harness and driven by one
/// thread (so dropping it is a real runtime teardown).
pub struct Smol {
    executor: Option<std::sync::Arc<smol::Executor<'static>>>,
    stop: Option<async_channel::Sender<()>>,
    driver: Option<std::thread::JoinHandle<()>>,
    guards: Mutex<Vec<tidings_smol::Guard>>,
    runtimes: Mutex<Vec<tidings_smol::SmolRuntime>>,
    tasks: Mutex<Vec<smol::Task<()>>>,
}

impl Smol {
    fn executor(&self) -> &std::sync::Arc<smol::Executor<'static>> {
        self.executor
            .as_ref()
            .expect("executor lives until drop_runtime")
    }

    fn stop_driver(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send_blocking(());
        }
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

impl Harness for Smol {
    const NAME: &'static str = "smol";
    const HAS_RUNTIME: bool = true;

    fn new() -> Self {
        let executor = std::sync::Arc::new(smol::Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let ex = executor.clone();
        let driver = std::thread::Builder::new()
            .name("smol-harness".into())
            .spawn(move || {
                let _ = smol::block_on(ex.run(stopped.recv()));
            })
            .expect("smol driver thread");
        Smol {
            executor: Some(executor),
            stop: Some(stop),
            driver: Some(driver),
            guards: Mutex::new(Vec::new()),
            runtimes: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, builder: ReporterBuilder) -> Reporter {
        let (reporter, guard) =
            tidings_smol::start_on(self.executor(), builder).expect("start smol reporter");
        self.runtimes.lock().unwrap().push(guard.runtime().clone());
        self.guards.lock().unwrap().push(guard);
        reporter
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        smol::block_on(fut)
    }

    fn spawn(&self, task: Task) {
        let task = self.executor().spawn(task);
        self.tasks.lock().unwrap().push(task);
    }

    fn nats_sink(&self, config: NatsConfig) -> Result<Box<dyn Sink>, ConfigError> {
        Ok(Box::new(tidings_nats_sync::SyncNatsSink::connect(config)?))
    }

    fn detach_guards(&self) {
        for g in self.guards.lock().unwrap().drain(..) {
            g.detach();
        }
    }

    fn drop_runtime(mut self) {
        self.detach_guards();
        self.stop_driver();
        self.tasks.get_mut().unwrap().clear();
        // The runtimes hold the executor weakly: this is the last strong
        // reference, and dropping it drops every task on it.
        drop(self.executor.take());
    }

    fn live_tasks(&self) -> usize {
        let tasks = self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .filter(|t| !t.is_finished())
            .count();
        let workers: usize = self
            .runtimes
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.live_tasks())
            .sum();
        tasks + workers
    }

    fn pause(&self, d: std::time::Duration) {
        smol::block_on(smol::Timer::after(d));
    }
}

impl Drop for Smol {
    fn drop(&mut self) {
        // Guards shut down while the executor still runs their workers.
        self.guards.get_mut().unwrap().clear();
        self.stop_driver();
    }
}

/// The tokio adapter; `MULTI_THREAD` picks the runtime flavor.
pub struct Tokio<const MULTI_THREAD: bool> {
    rt: Option<tokio::runtime::Runtime>,
    guards: Mutex<Vec<tidings_tokio::Guard>>,
    runtimes: Mutex<Vec<tidings_tokio::TokioRuntime>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// tokio, multi-thread runtime (2 workers).
pub type TokioMultiThread = Tokio<true>;
/// tokio, current-thread runtime: it runs only inside `block_on`.
pub type TokioCurrentThread = Tokio<false>;

impl<const MULTI_THREAD: bool> Tokio<MULTI_THREAD> {
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime lives until drop_runtime")
    }
}

impl<const MULTI_THREAD: bool> Harness for Tokio<MULTI_THREAD> {
    const NAME: &'static str = if MULTI_THREAD {
        "tokio multi-thread"
    } else {
        "tokio current-thread"
    };
    const HAS_RUNTIME: bool = true;

    fn new() -> Self {
        let rt = if MULTI_THREAD {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("tokio runtime");
        Tokio {
            rt: Some(rt),
            guards: Mutex::new(Vec::new()),
            runtimes: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, builder: ReporterBuilder) -> Reporter {
        let (reporter, guard) = tidings_tokio::start_on(self.rt().handle().clone(), builder)
            .expect("start tokio reporter");
        self.runtimes.lock().unwrap().push(guard.runtime().clone());
        self.guards.lock().unwrap().push(guard);
        reporter
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt().block_on(fut)
    }

    fn spawn(&self, task: Task) {
        let handle = self.rt().spawn(task);
        self.tasks.lock().unwrap().push(handle);
    }

    fn nats_sink(&self, config: NatsConfig) -> Result<Box<dyn Sink>, ConfigError> {
        let sink = self
            .rt()
            .block_on(tidings_tokio::NatsSink::connect(config))?;
        Ok(Box::new(sink))
    }

    fn detach_guards(&self) {
        for g in self.guards.lock().unwrap().drain(..) {
            g.detach();
        }
    }

    fn drop_runtime(mut self) {
        self.detach_guards();
        self.tasks.get_mut().unwrap().clear();
        drop(self.rt.take());
    }

    fn live_tasks(&self) -> usize {
        let tasks = self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .filter(|t| !t.is_finished())
            .count();
        let workers: usize = self
            .runtimes
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.live_tasks())
            .sum();
        tasks + workers
    }

    fn pause(&self, d: std::time::Duration) {
        self.rt()
            .block_on(async move { tokio::time::sleep(d).await });
    }
}

impl<const MULTI_THREAD: bool> Drop for Tokio<MULTI_THREAD> {
    fn drop(&mut self) {
        // Scenarios shut their reporters down; a guard still armed here
        // would block on a current-thread runtime nobody drives, so end it
        // inside the runtime instead.
        let guards: Vec<_> = self.guards.get_mut().unwrap().drain(..).collect();
        if let Some(rt) = self.rt.as_ref() {
            for g in guards {
                rt.block_on(g.shutdown());
            }
        }
    }
}
