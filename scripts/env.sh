# Sourced by Keel's scripts: where the toolchain finds libtorch and keeps its build cache.
# Paths are stable across clones, so the ~14-minute libtorch shim build happens once per machine.
keel_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEEL_CACHE="${KEEL_CACHE:-$HOME/.cache/keel}"
# `target-native`: the build for this machine's CPU (.cargo/config.toml), kept apart from builds
# made with other flags.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KEEL_CACHE/target-native}"
keel_venv="$KEEL_CACHE/venv"
if [ -z "${LIBTORCH:-}" ]; then
  torch_dir_file="$keel_venv/.keel-torch-dir"
  if [ ! -s "$torch_dir_file" ] && [ -x "$keel_venv/bin/python" ]; then
    "$keel_venv/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))" > "$torch_dir_file"
  fi
  if [ -s "$torch_dir_file" ]; then
    LIBTORCH="$(cat "$torch_dir_file")"
    export LIBTORCH
  fi
fi
# torch wheels since 2.7 use the C++11 ABI.
export LIBTORCH_CXX11_ABI="${LIBTORCH_CXX11_ABI:-1}"
export PATH="$keel_venv/bin:$PATH"
# The `atari` feature: ALE's source (compiled by keel-ale-sys) and the ROMs, unpacked by setup.sh.
if [ -z "${KEEL_ALE_SRC:-}" ] && [ -f "$KEEL_CACHE/ale-py-0.12.1/.complete" ]; then
  export KEEL_ALE_SRC="$KEEL_CACHE/ale-py-0.12.1"
fi
if [ -z "${KEEL_ALE_ROMS:-}" ] && [ -f "$KEEL_CACHE/ale-roms-0.12.1/.complete" ]; then
  export KEEL_ALE_ROMS="$KEEL_CACHE/ale-roms-0.12.1"
fi
