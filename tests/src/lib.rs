//! # tidings-conformance
//!
//! The scenarios every tidings adapter must pass, and the NATS harness they
//! run against: throwaway `nats-server` processes on random loopback ports
//! ([`nats_server`]) and probes that count what actually arrived
//! ([`nats_probe`]).

pub mod nats_probe;
pub mod nats_server;

pub mod adapters;
pub mod fault_scenarios;
pub mod harness;
pub mod nats_scenarios;
pub mod scenarios;
pub mod storm_scenarios;

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds (true) or `within` passes
/// (false). For test binaries waiting on another process or thread; the
/// scenarios themselves never wait on the calling thread.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Instantiates every scenario as a `#[test]` for one [`harness::Harness`].
///
/// ```text
/// tidings_conformance::conformance_tests!(tidings_conformance::adapters::Blocking);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!(@each $harness;
            in_flight_is_tracked,
            graceful_drain,
            receipts_await_and_wait,
            concurrent_reporters,
            hung_sink_shutdown_on_time,
            failing_then_recovering_sink,
            reports_during_and_after_shutdown,
            runtime_dropped_without_shutdown,
            last_handle_dropped,
            panicking_sink,
            overflow_policies,
            no_tasks_left,
        );
        $crate::conformance_tests!(@nats $harness;
            nats_core_publish_arrives,
            jetstream_exactly_once,
            nats_killed_and_restarted_mid_stream,
            nats_down_at_start,
            oversized_report,
            nats_bad_config_names_the_field,
            jetstream_cluster_leader_killed,
        );
        $crate::conformance_tests!(@faults $harness;
            fault_core_publish_denied,
            fault_jetstream_publish_denied,
            fault_stream_full_discard_new,
            fault_stream_max_msg_size,
            fault_stream_deleted_mid_run,
            fault_stream_captures_other_subjects,
            fault_another_stream_captures_the_subject,
            fault_over_long_subject,
            fault_fallback_directory_removed,
            fault_deep_context_spooled_then_replayed,
            fault_slow_syncing_fallback,
        );
        $crate::conformance_tests!(@storms $harness;
            storm_folds_repeats_into_counted_aggregates,
            storm_runtime_dropped_mid_window_spills_the_aggregate,
            folded_receipts_name_their_aggregate,
            before_send_drops_modifies_and_survives_panics,
        );
    };
    (@each $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$name::<$harness>();
            }
        )*
    };
    (@storms $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::storm_scenarios::$name::<$harness>();
            }
        )*
    };
    (@faults $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::fault_scenarios::$name::<$harness>();
            }
        )*
    };
    (@nats $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::nats_scenarios::$name::<$harness>();
            }
        )*
    };
}
