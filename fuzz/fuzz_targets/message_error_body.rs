#![no_main]
// See exocore_protocol_fuzz::wire_round_trip for what is checked.
use exocore_protocol::message::ErrorBody;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exocore_protocol_fuzz::wire_round_trip::<ErrorBody>("ErrorBody", data)
});
