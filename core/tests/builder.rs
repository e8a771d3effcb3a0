//! Invalid configuration fails at build time with an error naming the
//! field; nothing is started.

use std::time::Duration;

use tidings_core::testing::{ManualRuntime, TestSink};
use tidings_core::{BuildError, Overflow, Reporter, ReporterBuilder, RetryPolicy};

fn field_of(builder: ReporterBuilder) -> String {
    let rt = ManualRuntime::new();
    match builder.build(rt.handle()) {
        Err(BuildError::Config(e)) => {
            assert!(e.to_string().contains(e.field()), "{e}");
            e.field().to_owned()
        }
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a bad configuration was accepted"),
    }
}

fn sink() -> TestSink {
    TestSink::new("mem").0
}

#[test]
fn bad_settings_name_their_field() {
    let b = || Reporter::builder().sink(sink());
    assert_eq!(field_of(b().capacity(0)), "capacity");
    assert_eq!(
        field_of(b().shutdown_deadline(Duration::ZERO)),
        "shutdown_deadline"
    );
    assert_eq!(field_of(b().max_batch(0)), "max_batch");
    assert_eq!(
        field_of(b().max_concurrent_batches(0)),
        "max_concurrent_batches"
    );
    assert_eq!(
        field_of(b().overflow(Overflow::Block {
            timeout: Duration::ZERO
        })),
        "overflow.timeout"
    );
    assert_eq!(
        field_of(b().retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        })),
        "retry.max_attempts"
    );
    assert_eq!(
        field_of(b().retry(RetryPolicy {
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        })),
        "retry.max_backoff"
    );
    assert_eq!(field_of(b().sink(sink())), "sinks"); // two sinks named "mem"
}

#[test]
fn a_good_configuration_builds() {
    let rt = ManualRuntime::new();
    let reporter = Reporter::builder()
        .sink(sink())
        .capacity(1)
        .build(rt.handle())
        .unwrap();
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(1)));
    assert!(summary.stats.is_balanced());
}
