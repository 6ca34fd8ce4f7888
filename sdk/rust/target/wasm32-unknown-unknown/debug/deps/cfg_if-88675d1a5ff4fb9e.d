/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/cfg_if-88675d1a5ff4fb9e.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/libcfg_if-88675d1a5ff4fb9e.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs:
