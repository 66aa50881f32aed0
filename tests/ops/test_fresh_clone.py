"""A clone of the repository with nothing beside it holds everything its tests need (nothing reaches outside)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Spelled in parts so that this file does not match its own search.
OUTSIDE = ("../" + "shared", "parent / " + '"shared"')


def _clone(tmp_path: Path) -> Path:
    """A clone of the committed HEAD, alone in an otherwise empty directory."""
    target = tmp_path / "twinledger"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twinledger"]
    return target


def test_no_tracked_file_reaches_outside_the_repository(tmp_path):
    clone = _clone(tmp_path)
    found = subprocess.run(
        ["git", "grep", "-n", "-F", "-e", OUTSIDE[0], "-e", OUTSIDE[1]], cwd=clone, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert found.returncode == 1, f"files name a path outside the repository:\n{found.stdout}"


def test_collection_succeeds_in_a_lone_clone(tmp_path):
    clone = _clone(tmp_path)
    # The clone's own sources come first on the path, ahead of this checkout's editable install.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(clone / "sdk"), str(clone / "node"), str(clone)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    closing = run.stdout.strip().splitlines()[-1]
    assert " collected" in closing, run.stdout[-4000:]
    assert "error" not in closing, run.stdout[-4000:]
