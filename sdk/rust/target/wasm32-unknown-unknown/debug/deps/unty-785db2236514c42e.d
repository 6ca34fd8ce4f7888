/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/unty-785db2236514c42e.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/unty-0.0.4/src/lib.rs

/work/main/sdk/rust/target/wasm32-unknown-unknown/debug/deps/libunty-785db2236514c42e.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/unty-0.0.4/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/unty-0.0.4/src/lib.rs:
