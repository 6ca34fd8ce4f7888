#!/usr/bin/env bash
# Install what scripts/cross.sh and scripts/pi-smoke.sh need to build Exocore for
# Raspberry Pi (armv7 = Pi 2/3/4 32-bit OS, aarch64 = Pi 3/4/5 64-bit OS) and to
# run the armv7 binary under user-mode QEMU. Idempotent: each step is skipped
# when already satisfied, so it is cheap to call from CI or by hand.
set -euo pipefail

# Cross C compilers (used as linkers and for C code in -sys crates such as LMDB),
# their target libc headers/libs, and qemu-user-static for running the binaries.
pkgs=(gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu
      libc6-dev-armhf-cross libc6-dev-arm64-cross qemu-user-static)

missing=()
for p in "${pkgs[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  # apt needs root; use sudo only when we are not root already.
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "install-cross-deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "install-cross-deps: Debian packages already installed"
fi

# Rust standard libraries for both Pi targets (rustup skips installed ones,
# but checking first avoids a network round-trip).
targets=(armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu)
installed="$(rustup target list --installed)"
need=()
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || need+=("$t")
done
if ((${#need[@]})); then
  echo "install-cross-deps: rustup target add ${need[*]}"
  rustup target add "${need[@]}"
else
  echo "install-cross-deps: rust targets already installed"
fi
