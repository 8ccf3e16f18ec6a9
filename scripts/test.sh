#!/usr/bin/env bash
# Sets everything up (idempotent) and runs every test: the Rust workspace (envs, golden data,
# conformance suite, libtorch toolchain, command line) and the Python package.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
# shellcheck source=env.sh
source "$root/scripts/env.sh"
cd "$root"
echo "keel test: cargo test --release"
# The setup installed controlgym's data, the humanoid's (model and clips) and Ray: envs and tests
# that need them must not skip here.
# `--features atari`: the Atari envs and their golden tests, on the ALE and ROMs setup.sh fetched.
KEEL_REQUIRE_CONTROLGYM_DATA=1 KEEL_REQUIRE_HUMANOID_DATA=1 KEEL_REQUIRE_RAY=1 cargo test --release --features atari
echo "keel test: pytest python/tests"
"$root/.venv/bin/python" -m pytest -q python/tests
echo "keel test: all passed"
