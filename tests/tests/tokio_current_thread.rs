//! The conformance suite on the tokio adapter, current-thread runtime.

tidings_conformance::conformance_tests!(tidings_conformance::adapters::TokioCurrentThread);
