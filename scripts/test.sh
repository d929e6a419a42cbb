#!/usr/bin/env bash
# windsock's whole test suite, with what it needs installed first:
#   - tansu, a Kafka-protocol broker for the Kafka tests (cargo install; cached in ~/.cargo/bin)
#   - Chromium and ChromeDriver for the UI's end-to-end tests (Debian packages)
# then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v tansu >/dev/null 2>&1; then
  echo "==> installing tansu (Kafka-protocol broker for the tests; one-time, several minutes)"
  cargo install tansu --locked --features dynostore,libsql
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver (UI end-to-end tests)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked "$@"
