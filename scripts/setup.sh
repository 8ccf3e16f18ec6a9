#!/usr/bin/env bash
# Idempotent setup for Keel: a Python environment with the pinned torch (whose libtorch the
# `tch` crate links against), gymnasium and the test tools, then the Rust workspace build.
#
# The environment lives in a cache outside the clone (default ~/.cache/keel/venv) and `.venv`
# is a link to it. The torch wheel is large and the libtorch path is baked into the tch build:
# one stable location means it is downloaded once and tch is compiled once, whatever the clone.
#
# Environment variables:
#   KEEL_CACHE        cache root (default: $HOME/.cache/keel)
#   CARGO_TARGET_DIR  cargo target directory (default: $KEEL_CACHE/target)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/venv"
python="${PYTHON:-python3}"

# Pinned versions: tch 0.24.0 is built against torch 2.11.0; gymnasium 1.4.0 is the reference
# for the classic-control golden data.
requirements=(
  "torch==2.11.0"
  "numpy>=2,<3"
  "gymnasium==1.4.0"
  "maturin>=1.8,<2"
  "pytest>=8"
  "stable-baselines3==2.9.2"
)

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  echo "keel setup: creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi

stamp="$venv/.keel-requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "keel setup: installing ${requirements[*]} (torch is large; this happens once)"
  "$venv/bin/pip" install -q "${requirements[@]}"
  printf '%s\n' "$wanted" > "$stamp"
fi

# controlgym 1.0.0 provides the linear systems' data (its COMPleib MAT-files), which Keel reads
# from the installed package and converts once into $KEEL_CACHE/controlgym-1.0.0. Its pinned
# dependencies (numpy < 2, gymnasium 0.29.1) would replace the ones above, so it is installed
# without them: Keel needs its data files, not its code (scripts/controlgym_venv.sh makes a
# separate environment where controlgym itself runs, for the golden data and the benchmark).
data_requirements=(
  "controlgym==1.0.0"
)
for requirement in "${data_requirements[@]}"; do
  name="${requirement%%==*}"
  version="${requirement##*==}"
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$name') != '$version')" 2>/dev/null; then
    echo "keel setup: installing $requirement (data files only, --no-deps)"
    "$venv/bin/pip" install -q --no-deps "$requirement"
  fi
done

# `.venv` in the clone points at the shared environment.
if [ -L "$root/.venv" ] || [ ! -e "$root/.venv" ]; then
  ln -sfn "$venv" "$root/.venv"
elif [ "$(cd "$root/.venv" && pwd -P)" != "$(cd "$venv" && pwd -P)" ]; then
  echo "keel setup: $root/.venv exists and is not a link to $venv; using it as is" >&2
fi

# Text in plots (`keel performative figure2`) is drawn from a TrueType font file; Keel looks for
# DejaVu Sans (or $KEEL_FONT), so install it where it is missing and apt-get can.
if [ -z "${KEEL_FONT:-}" ] && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "keel setup: installing fonts-dejavu-core (text in plots)"
    apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null
  else
    echo "keel setup: no DejaVu Sans font; plots need one: install fonts-dejavu-core or set KEEL_FONT" >&2
  fi
fi

# Rust: every binary and the Python extension, in release (the agents train in release, and one
# profile means libtorch's shim is compiled once).
# shellcheck source=env.sh
source "$root/scripts/env.sh"
cd "$root"
echo "keel setup: building the workspace (release)"
cargo build --release --quiet
echo "keel setup: building the Python package into $venv"
VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --release --quiet --manifest-path python/Cargo.toml >/dev/null
mkdir -p "$root/target"
ln -sfn "$CARGO_TARGET_DIR/release/keel" "$root/target/keel"
echo "keel setup: done (binary: target/keel)"
