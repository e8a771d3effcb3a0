//! # tidings-conformance
//!
//! The scenarios every tidings adapter must pass, and the NATS harness they
//! run against: throwaway `nats-server` processes on random loopback ports
//! ([`nats_server`]) and probes that count what actually arrived
//! ([`nats_probe`]).

pub mod nats_probe;
pub mod nats_server;
