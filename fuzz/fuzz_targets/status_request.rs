//! The status socket's request parser on any bytes a client sends: see
//! `supertrees_core::fuzzing::status_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    supertrees_core::fuzzing::status_request(data);
});
