//! Helpers of the engine's own tests.

/// 256 cases per property; `PROPTEST_CASES` overrides it, to search longer:
/// the property tests of the parsers (as those of the core's machine).
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
