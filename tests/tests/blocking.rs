//! The conformance suite on the blocking-thread adapter.

tidings_conformance::conformance_tests!(tidings_conformance::adapters::Blocking);
