"""Benchmark the IPFS layer: import throughput vs plain sha256 and vs ipfs-car, peak memory, CAR speed.

    .venv/bin/python scripts/bench/ipfs.py [--size-mib 256]

Each case runs in its own child process so its peak RSS (ru_maxrss from wait4) is its own. Throughput is
content bytes per second; "vs sha256" divides by plain hashlib.sha256 over the same file in one process.

Two tables. "In-process" cases time only the work inside the child (no interpreter start-up). "Whole process"
cases time the commands a user runs, start-up included, and compare like with like: `ipfs-car pack` (CIDv1,
raw leaves, 1 MiB chunks, 1024 links: unixfs-v1-2025) against `twinledger ipfs add --profile=unixfs-v1-2025`
followed by `twinledger ipfs car export`, both ending with a CAR file of the same DAG (the roots are checked
equal). Ours does more work (a durable store, every block re-read and verified for the export) in two start-ups.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

REPO_ROOT = Path(__file__).resolve().parents[2]
READ = 1 << 20


def _write_input(path: Path, size: int) -> None:
    stream = Cipher(algorithms.ChaCha20(hashlib.sha256(b"bench").digest(), b"\0" * 16), None).encryptor()
    with path.open("wb") as out:
        left = size
        while left:
            step = min(left, 16 << 20)
            out.write(stream.update(b"\0" * step))
            left -= step


def run_case(case: str, source: Path, work: Path) -> dict[str, object]:
    """One measurement, inside the child process."""
    from twinledger.ipfs import FileBlockStore, ImportOptions, compute_cid, export_car, import_car

    profiles = {"v0": ImportOptions(), "v1": ImportOptions.profile("unixfs-v1-2025")}
    start = time.perf_counter()
    extra: dict[str, object] = {}
    if case == "sha256":
        digest = hashlib.sha256()
        with source.open("rb") as stream:
            while chunk := stream.read(READ):
                digest.update(chunk)
    elif case.startswith("hash-"):
        with source.open("rb") as stream:
            extra["cid"] = str(compute_cid(stream, profiles[case[5:]]).cid)
    elif case.startswith("store-"):
        store = FileBlockStore(work / f"repo-{case}")
        with source.open("rb") as stream:
            extra["cid"] = str(store.add_stream(stream, profiles[case[6:]]).cid)
    elif case == "car-export":
        store = FileBlockStore(work / "repo-store-v0")
        root = store.pins()[0]
        with (work / "export.car").open("wb") as out:
            export_car(store, root, out)
    elif case == "car-import":
        with (work / "export.car").open("rb") as stream:
            extra["roots"] = [str(r) for r in import_car(FileBlockStore(work / "repo-car"), stream)]
    return {"seconds": time.perf_counter() - start, **extra}


def _measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} failed with {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024, output


def _rate_row(name: str, seconds: float, rss: int, size: int, sha_rate: float) -> str:
    rate = size / seconds
    return f"{name:<44}{seconds:>9.2f}{rate / 2**20:>9.0f}{rate / sha_rate:>11.2f}{rss / 2**20:>14.0f}"


def _whole_process(work: Path, source: Path, tag: str) -> dict[str, tuple[float, int, str]]:
    """ipfs-car pack vs twinledger add + car export (unixfs-v1-2025), and add --only-hash, as a user runs them."""
    twinledger = str(Path(sys.executable).with_name("twinledger"))
    ipfs_car = str(REPO_ROOT / "node_modules" / ".bin" / "ipfs-car")
    repo = work / f"cli-repo-{tag}"
    env = os.environ | {"TWINLEDGER_IPFS_BACKEND": "embedded"}
    profile = "--profile=unixfs-v1-2025"
    js_seconds, js_rss, js_out = _measure(
        [ipfs_car, "pack", str(source), "--no-wrap", "--output", str(work / f"js-{tag}.car")]
    )
    add_seconds, add_rss, root = _measure(
        [twinledger, "ipfs", "add", "-Q", profile, "--repo", str(repo), str(source)], env
    )
    root = root.strip()
    export = [twinledger, "ipfs", "car", "export", root, "-o", str(work / f"py-{tag}.car"), "--repo", str(repo)]
    export_seconds, export_rss, _ = _measure(export, env)
    hash_seconds, hash_rss, hashed = _measure([twinledger, "ipfs", "add", "-n", "-Q", profile, str(source)], env)
    if not js_out.strip() == root == hashed.strip():
        raise SystemExit(f"different roots for the same profile: ipfs-car {js_out.strip()}, twinledger {root}")
    return {
        "ipfs-car": (js_seconds, js_rss, root),
        "twinledger": (add_seconds + export_seconds, max(add_rss, export_rss), root),
        "only-hash": (hash_seconds, hash_rss, root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        work = Path(args.work)
        print(json.dumps(run_case(args.case, work / "input.bin", work)))
        return
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="ipfs-bench-", dir=REPO_ROOT))
    try:
        _write_input(work / "input.bin", size)
        (work / "empty.bin").write_bytes(b"")
        rows: list[tuple[str, float, int]] = []
        results: dict[str, dict[str, object]] = {}
        cases = ["sha256", "hash-v0", "hash-v1", "store-v0", "store-v1", "car-export", "car-import"]
        for case in cases:
            argv = [sys.executable, __file__, "--case", case, "--work", str(work)]
            _, rss, output = _measure(argv)
            results[case] = json.loads(output)
            rows.append((case, float(results[case]["seconds"]), rss))  # type: ignore[arg-type]
        startup = _whole_process(work, work / "empty.bin", "empty")
        whole = _whole_process(work, work / "input.bin", "input")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sha_rate = size / rows[0][1]
    header = f"{'case':<44}{'seconds':>9}{'MiB/s':>9}{'vs sha256':>11}{'peak RSS MiB':>14}"
    print(f"input: {args.size_mib} MiB (G1-style ChaCha20 bytes), {os.cpu_count()} CPUs")
    print("\nin-process (the work only, no interpreter start-up)")
    print(header)
    for name, seconds, rss in rows:
        print(_rate_row(name, seconds, rss, size, sha_rate))
    for case in ("hash-v0", "hash-v1"):
        print(f"{case} root: {results[case]['cid']}")
    print("\nwhole process, start-up included, unixfs-v1-2025 on both sides (CIDv1, raw leaves, 1 MiB, 1024 links)")
    print(header)
    labels = {
        "ipfs-car": "ipfs-car pack -> CAR (npm, node)",
        "twinledger": "twinledger ipfs add + car export -> CAR",
        "only-hash": "twinledger ipfs add -n (no CAR, no store)",
    }
    for key, label in labels.items():
        seconds, rss, _ = whole[key]
        print(_rate_row(label, seconds, rss, size, sha_rate))
    print("start-up alone (an empty file): " + ", ".join(f"{key} {startup[key][0]:.2f} s" for key in labels))
    print(f"same root on both sides: {whole['ipfs-car'][2]}")
    ratio = whole["ipfs-car"][0] / whole["twinledger"][0]
    print(f"twinledger add + car export vs ipfs-car pack (same DAG, same CAR, whole processes): {ratio:.2f}x")


if __name__ == "__main__":
    main()
