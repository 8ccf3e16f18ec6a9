#!/usr/bin/env bash
# A separate venv for scripts/bench_python.py: Keel (built from ./python) next to its peers,
# envpool and rlox, which pin their own dependencies and so stay out of the project venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
bench="$KEEL_CACHE/bench-venv"
[ -x "$bench/bin/python" ] || python3 -m venv "$bench"
"$bench/bin/pip" install -q --upgrade pip
"$bench/bin/pip" install -q "numpy>=2,<3" "gymnasium==1.4.0" maturin
# envpool 1.2.5 is the newest wheel for CPython 3.11; rlox's core extension needs no torch.
"$bench/bin/pip" install -q "envpool==1.2.5" || echo "bench setup: envpool did not install; it will be skipped"
"$bench/bin/pip" install -q --no-deps "rlox==1.2.0" || echo "bench setup: rlox did not install; it will be skipped"
"$bench/bin/pip" install -q "$root/python"
echo "bench setup: done: $bench/bin/python scripts/bench_python.py"
