"""The guides run as written: README.md and every docs/*.md.

- Every ```python block is executed.
- Every ```bash run block (a fence whose info string is `bash run`) is run with bash, `set -e`,
  under a timeout, from a scratch copy of the repository root: a folder linking every top-level
  entry of the clone except `runs/`, so `target/keel`, `configs/` and `scripts/` resolve as from
  the root while the outputs the commands write under `runs/` (or beside them) stay in the scratch
  folder. The blocks of one file share its scratch folder and run in order, so a later block may
  read what an earlier one wrote. Quick commands only: long trainings stay plain ```bash blocks.
- Every relative link, and its #anchor, points at a file and a heading that exist.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_TIMEOUT_S = 180

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", flags=re.M | re.S)


def blocks(path, info):
    """The code blocks of `path` whose info string's words are `info`, in order."""
    return [body for words, body in FENCE.findall(path.read_text()) if words.split() == info]


def name(path):
    return str(path.relative_to(ROOT))


PYTHON = [(path, i, code) for path in GUIDES for i, code in enumerate(blocks(path, ["python"]))]
RUNNABLE = [(path, i, code) for path in GUIDES for i, code in enumerate(blocks(path, ["bash", "run"]))]


def test_the_guides_have_blocks_to_run():
    assert len(PYTHON) >= 7
    assert len(RUNNABLE) >= 10
    readme = ROOT / "README.md"
    assert blocks(readme, ["python"]) and blocks(readme, ["bash", "run"])


@pytest.mark.parametrize(("path", "index", "code"), PYTHON, ids=[f"{name(p)}:python{i}" for p, i, _ in PYTHON])
def test_python_block_runs(path, index, code):
    exec(compile(code, f"{name(path)} python block {index}", "exec"), {})


@pytest.fixture(scope="session")
def scratch_roots(tmp_path_factory):
    """One scratch copy of the repository root per guide, made on first use."""
    roots = {}

    def root_for(path):
        if path not in roots:
            folder = tmp_path_factory.mktemp(path.stem)
            for entry in ROOT.iterdir():
                if entry.name not in {".git", "runs"}:
                    (folder / entry.name).symlink_to(entry)
            roots[path] = folder
        return roots[path]

    return root_for


@pytest.mark.parametrize(("path", "index", "code"), RUNNABLE, ids=[f"{name(p)}:run{i}" for p, i, _ in RUNNABLE])
def test_runnable_bash_block_succeeds(path, index, code, scratch_roots):
    assert (ROOT / "target" / "keel").exists(), "target/keel is missing: run scripts/setup.sh"
    env = dict(os.environ)
    # `python` in a block is the environment this test runs in (the project venv).
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=scratch_roots(path),
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name(path)} bash run block {index} ran past {RUN_TIMEOUT_S} s:\n{code}")
    assert done.returncode == 0, (
        f"{name(path)} bash run block {index} exited with {done.returncode}:\n{code}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def anchors(path):
    """GitHub's anchors for the headings of `path` (code blocks skipped, repeats numbered)."""
    text = FENCE.sub("", path.read_text())
    seen = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


@pytest.mark.parametrize("path", GUIDES, ids=[name(p) for p in GUIDES])
def test_links_resolve(path):
    text = FENCE.sub("", path.read_text())
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{name(path)}: links to nothing: {broken}"
