# Exocore. `make run` runs a local node; `make test` runs every check CI runs.
CARGO ?= cargo
EXO_RUN_DIR ?= .exo
EXO_RUN_LISTEN ?= 127.0.0.1:3330
EXO := ./target/release/exo -d $(EXO_RUN_DIR)

.PHONY: build run test bench fmt fmt-check lint cross pi-smoke sim

build:
	$(CARGO) build --release --bin exo

# The main job: a local node and cell under ./.exo (made on first use), then the daemon in
# the foreground until Ctrl-C.
run: build
	@if [ ! -f $(EXO_RUN_DIR)/node.toml ]; then \
		$(EXO) node init --name local --listen $(EXO_RUN_LISTEN) --address $(EXO_RUN_LISTEN); fi
	@if [ -z "$$(ls -A $(EXO_RUN_DIR)/cells 2>/dev/null)" ]; then \
		$(EXO) cell init --name default; fi
	exec $(EXO) daemon

test: fmt-check lint
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

bench: build
	$(CARGO) build --release --example transport_bench -p exocore-protocol
	$(CARGO) build --release --example chain_bench
	$(CARGO) build --release --example store_bench
	$(CARGO) build --release --example cluster_bench
	$(CARGO) build --release --example apps_bench
	bash scripts/bench.sh

# More seeds of the replication simulation than `make test` runs: make sim SEEDS=5000
SEEDS ?= 2000
sim:
	SIM_SEEDS=$(SEEDS) $(CARGO) test --release --test simulation -- --nocapture

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path sdk/rust/Cargo.toml

fmt-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path sdk/rust/Cargo.toml -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# The Rust app SDK builds for WebAssembly only (its own workspace; tests/apps_sdk.rs runs its sample).
	$(CARGO) clippy --manifest-path sdk/rust/Cargo.toml --target wasm32-unknown-unknown --all-targets -- -D warnings
	@# The design card: smol, not tokio, anywhere in the dependency tree.
	@if $(CARGO) tree --workspace --edges normal,build --prefix none | grep -q '^tokio '; then \
		echo "error: tokio is in the dependency tree (cargo tree -i tokio)"; exit 1; fi

# Release binaries for Raspberry Pi: armv7 (32-bit Pi OS) and aarch64.
cross:
	bash scripts/cross.sh

# The armv7 binary under qemu-arm-static: node init, cell init, daemon start and stop.
pi-smoke:
	bash scripts/pi-smoke.sh
