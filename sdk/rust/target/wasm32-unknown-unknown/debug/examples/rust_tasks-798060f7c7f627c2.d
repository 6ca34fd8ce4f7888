/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/examples/rust_tasks-798060f7c7f627c2.d: examples/rust_tasks.rs Cargo.toml

/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/examples/librust_tasks-798060f7c7f627c2.rmeta: examples/rust_tasks.rs Cargo.toml

examples/rust_tasks.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
