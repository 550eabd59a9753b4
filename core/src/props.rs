//! Settings shared by the property tests (the machine's model, its
//! bookkeeping, the wire's frame reader).

use proptest::test_runner::Config;

/// 256 cases per property; `PROPTEST_CASES` overrides it, to search longer.
pub(crate) fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
