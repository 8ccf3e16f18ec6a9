#!/usr/bin/env bash
# Sets everything up (idempotent) and runs every test: the Rust workspace (envs, golden data,
# conformance suite, libtorch toolchain, command line) and the Python package.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
# shellcheck source=env.sh
source "$root/scripts/env.sh"
cd "$root"
# RLlib's environment is the tests' alone (4.5 GB with its torch), so the setup of the main job
# does not make it; the test command does (once), and its test then runs instead of skipping.
bash "$root/scripts/rllib_venv.sh" >/dev/null
# Everything above is installed: a test that needs it must fail, not skip, where it is missing
# (controlgym's data, the humanoid's, the Atari build and ROMs, Ray, RLlib), in cargo and pytest.
export KEEL_REQUIRE_CONTROLGYM_DATA=1 KEEL_REQUIRE_HUMANOID_DATA=1 KEEL_REQUIRE_ATARI=1
export KEEL_REQUIRE_RAY=1 KEEL_REQUIRE_RLLIB=1
echo "keel test: cargo test --release"
# `--features atari`: the Atari envs and their golden tests, on the ALE and ROMs setup.sh fetched.
cargo test --release --features atari
echo "keel test: pytest python/tests"
"$root/.venv/bin/python" -m pytest -q python/tests
echo "keel test: all passed"
