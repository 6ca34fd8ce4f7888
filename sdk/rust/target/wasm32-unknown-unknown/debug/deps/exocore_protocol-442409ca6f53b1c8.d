/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/exocore_protocol-442409ca6f53b1c8.d: /work/main/protocol/src/lib.rs /work/main/protocol/src/admin.rs /work/main/protocol/src/app.rs /work/main/protocol/src/base32.rs /work/main/protocol/src/envelope.rs /work/main/protocol/src/error.rs /work/main/protocol/src/message.rs /work/main/protocol/src/store.rs /work/main/protocol/src/wire.rs

/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/libexocore_protocol-442409ca6f53b1c8.rmeta: /work/main/protocol/src/lib.rs /work/main/protocol/src/admin.rs /work/main/protocol/src/app.rs /work/main/protocol/src/base32.rs /work/main/protocol/src/envelope.rs /work/main/protocol/src/error.rs /work/main/protocol/src/message.rs /work/main/protocol/src/store.rs /work/main/protocol/src/wire.rs

/work/main/protocol/src/lib.rs:
/work/main/protocol/src/admin.rs:
/work/main/protocol/src/app.rs:
/work/main/protocol/src/base32.rs:
/work/main/protocol/src/envelope.rs:
/work/main/protocol/src/error.rs:
/work/main/protocol/src/message.rs:
/work/main/protocol/src/store.rs:
/work/main/protocol/src/wire.rs:
