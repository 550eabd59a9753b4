//! The cgroup file parsers on any text: see
//! `supertrees_engine::fuzzing::cgroup_parsers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    supertrees_engine::fuzzing::cgroup_parsers(data);
});
