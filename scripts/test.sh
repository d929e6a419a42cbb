#!/usr/bin/env bash
# windsock's whole test suite, with what it needs installed first:
#   - tansu, a Kafka-protocol broker for the Kafka tests (cargo install; cached in ~/.cargo/bin)
#   - Chromium and ChromeDriver for the UI's end-to-end tests (Debian packages)
#   - promtool (Debian's prometheus package) for the metrics and alerting-rules checks
#   - openapi-spec-validator (Python, in a venv under ~/.cache/windsock-tools) for the OpenAPI document
# then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"

# The OpenAPI document's validator, in a virtual environment of its own (PyPI); the contract
# test (tests/openapi_contract.rs) finds it through OPENAPI_SPEC_VALIDATOR.
tools="${XDG_CACHE_HOME:-$HOME/.cache}/windsock-tools"
export OPENAPI_SPEC_VALIDATOR="$tools/venv/bin/openapi-spec-validator"
if [ ! -x "$OPENAPI_SPEC_VALIDATOR" ]; then
  echo "==> installing openapi-spec-validator (checks the OpenAPI document) in $tools/venv"
  if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv
  fi
  python3 -m venv --clear "$tools/venv"
  "$tools/venv/bin/pip" install -q openapi-spec-validator
fi

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

if ! command -v promtool >/dev/null 2>&1; then
  echo "==> installing prometheus (its promtool checks /metrics, the alerting rules and their tests)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked "$@"
