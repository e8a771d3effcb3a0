//! The conformance suite on the smol adapter.

tidings_conformance::conformance_tests!(tidings_conformance::adapters::Smol);
