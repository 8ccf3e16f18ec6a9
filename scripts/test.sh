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
# The workspace build unifies keel-physics' `diff` feature (libtorch tensors) into every crate
# that links keel-physics; the test binaries of keel-envs and keel-curricula have no rpath of
# their own, so they find libtorch through LD_LIBRARY_PATH. (The `keel` binary and the crates
# with a build script embed it; tests/cli.rs checks the binary without LD_LIBRARY_PATH.)
LD_LIBRARY_PATH="${LIBTORCH:?scripts/env.sh sets LIBTORCH}/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  KEEL_REQUIRE_CONTROLGYM_DATA=1 KEEL_REQUIRE_HUMANOID_DATA=1 KEEL_REQUIRE_RAY=1 cargo test --release --features atari
echo "keel test: pytest python/tests"
"$root/.venv/bin/python" -m pytest -q python/tests
echo "keel test: all passed"
