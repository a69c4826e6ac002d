#!/usr/bin/env bash
# Runs every check and test suite of homeline: formatting, lints, unit and integration tests.
# Installs what the suites need when it is missing, so it passes on a clean clone on a fresh
# machine (with the Rust toolchain) as well as on a developer's.
#
#   bash tests/run-all.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the suites need, as COMMAND:PACKAGE pairs: PACKAGE is installed only when
# COMMAND is missing. The SIP edge tests (crates/homeline/tests/sip_edge.rs, tests/sip/) run
# SIPp, baresip, linphone-daemon and a python sender against homeline; the call tests
# (crates/homeline/tests/calls.rs, tests/calls/) capture RTP on `lo` with dumpcap (tshark).
DEBIAN_PACKAGES=(
    "sipp:sip-tester"
    "baresip:baresip-core"
    "linphone-daemon:linphone-cli"
    "python3:python3"
    "dumpcap:tshark"
)

# Installs the package of each COMMAND:PACKAGE pair whose command is missing.
ensure_debian_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    echo "==> installing Debian packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The Rust toolchain itself comes with the machine; its fmt and clippy components may not.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "run-all: cargo not found: install the Rust toolchain (rustup) first" >&2
        exit 1
    fi
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        echo "==> adding rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
}

step() {
    echo "==> $*"
    "$@"
}

ensure_rust
ensure_debian_packages ${DEBIAN_PACKAGES[@]+"${DEBIAN_PACKAGES[@]}"}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo test --workspace
