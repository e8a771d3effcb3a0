//! `tidings tail`, `check` and `replay` against real nats-server processes
//! (random loopback ports, killed on drop).

mod check;
mod common;
mod replay;
#[path = "../support/mod.rs"]
mod support;
mod tail;
