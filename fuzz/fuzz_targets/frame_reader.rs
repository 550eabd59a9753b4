//! The frame reader of the supervisor channels on any bytes, read as the
//! engine's messages in chunks: see `supertrees_core::fuzzing::frame_reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    supertrees_core::fuzzing::frame_reader(data);
});
