"""`scripts/bench/node.py --quick` runs end to end: every row of the table, numeric ratios, nothing left running.

Only the shape of the result is checked, never a timing: the figures themselves are the benchmark's business."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS_AND_PUSHES = ("read-1k-1", "read-1k-16", "read-64k-1", "read-64k-16", "push-1", "push-8")
GROWTH = ("growth-push-1", "growth-push-8", "growth-read-1k-16")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_quick_run_prints_every_row_with_numeric_ratios(tmp_path: Path) -> None:
    rows_file, cache, work = tmp_path / "rows.json", tmp_path / "fill-cache", tmp_path / "work"
    work.mkdir()
    command = [sys.executable, str(ROOT / "scripts" / "bench" / "node.py"), "--quick", "--seconds", "0.2",
               "--soak-seconds", "0.5", "--json", str(rows_file), "--fill-cache", str(cache),
               "--work-dir", str(work)]  # fmt: skip
    servers_before = set(processes_mentioning("twinledger-postgres-"))
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    rows = json.loads(rows_file.read_text())
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    for key in READS_AND_PUSHES:  # node vs its baseline at both levels: 0 and the 10 snapshots filled
        assert [r["stored"] for r in by_key[key]] == ["0", "10"], (key, by_key[key])
        for row in by_key[key]:
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
            assert "/s" in row["node"] and "ms CPU" in row["node"] and "/s" in row["baseline"], row
    assert {r["target"][:6] for r in by_key["read-1k-16"] + by_key["push-8"]} <= {"≥ 0.35", "≥ 0.25"}
    for key in GROWTH:
        (row,) = by_key[key]
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
    assert by_key["growth-push-8"][0]["target"].startswith("≥ 0.9 ")
    assert [float(r["node"].removesuffix(" s")) > 0 for r in by_key["startup"]] == [True, True]
    assert by_key["startup"][-1]["target"].startswith("< 2 ")

    (workers,) = by_key["workers"]
    help_text = subprocess.run([str(Path(sys.executable).parent / "twinledger"), "node", "up", "--help"],
                               capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""}).stdout  # fmt: skip
    if "--workers" in help_text:
        assert math.isfinite(workers["ratio"]) and workers["ratio"] > 0, workers
    else:
        assert workers["node"] == "n/a (node up has no --workers)" and workers["ratio"] is None, workers
    (soak,) = by_key["soak"]
    assert (
        soak["ratio"] >= 0
        and soak["ratio"] == int(soak["ratio"])
        and ("state DB" in soak["node"] or "metrics" in soak["node"])
    ), soak

    # PostgreSQL beside SQLite, replica scaling and failover (issue 15)
    for key in ("postgres-read-1k-1", "postgres-read-1k-16", "postgres-push-1", "postgres-push-8", "replicas"):
        (row,) = by_key[key]
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0 and "/s" in row["node"] and "/s" in row["baseline"], row
    assert by_key["postgres-push-8"][0]["target"].startswith("≥ 0.7 ")
    assert by_key["replicas"][0]["target"].startswith("≥ 1.6 ")
    (failover,) = by_key["failover"]
    assert failover["ratio"] > 0 and failover["node"].endswith(" s") and failover["target"].startswith("< 5 ")
    assert set(processes_mentioning("twinledger-postgres-")) <= servers_before, "the benchmark left PostgreSQL running"

    for row in rows:  # the table printed them all
        assert row["measure"] in run.stdout, row["measure"]
    assert (cache / "snapshots-10" / "complete").exists() and (cache / "snapshots-0" / "complete").exists()
    assert not processes_mentioning(str(tmp_path)), "the benchmark left processes running"
