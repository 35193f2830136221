//! End-to-end tests live in `tests/*.rs`; see ARCHITECTURE.md.
