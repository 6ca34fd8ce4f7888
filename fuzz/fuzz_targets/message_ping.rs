#![no_main]
// See exocore_protocol_fuzz::wire_round_trip for what is checked.
use exocore_protocol::message::Ping;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exocore_protocol_fuzz::wire_round_trip::<Ping>("Ping", data)
});
