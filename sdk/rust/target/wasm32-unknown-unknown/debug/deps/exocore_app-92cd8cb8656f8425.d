/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/exocore_app-92cd8cb8656f8425.d: src/lib.rs src/ffi.rs src/runtime.rs src/store.rs src/value.rs Cargo.toml

/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/libexocore_app-92cd8cb8656f8425.rmeta: src/lib.rs src/ffi.rs src/runtime.rs src/store.rs src/value.rs Cargo.toml

src/lib.rs:
src/ffi.rs:
src/runtime.rs:
src/store.rs:
src/value.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
