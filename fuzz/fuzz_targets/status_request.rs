//! The status socket's request parser on any bytes a client sends: see
//! `supertrees_engine::fuzzing::status_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    supertrees_engine::fuzzing::status_request(data);
});
