#![no_main]
// See exocore_protocol_fuzz::session::responder for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| exocore_protocol_fuzz::session::responder(data));
