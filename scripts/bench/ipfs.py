"""Benchmark the IPFS layer: import throughput vs plain sha256 and vs ipfs-car, peak memory, CAR speed.

    .venv/bin/python scripts/bench/ipfs.py [--size-mib 256]

Each case runs in its own child process so its peak RSS (ru_maxrss from wait4) is its own. Throughput is
content bytes per second; "vs sha256" divides by plain hashlib.sha256 over the same file in one process.
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
        rows: list[tuple[str, float, int]] = []
        results: dict[str, dict[str, object]] = {}
        cases = ["sha256", "hash-v0", "hash-v1", "store-v0", "store-v1", "car-export", "car-import"]
        for case in cases:
            argv = [sys.executable, __file__, "--case", case, "--work", str(work)]
            _, rss, output = _measure(argv)
            results[case] = json.loads(output)
            rows.append((case, float(results[case]["seconds"]), rss))  # type: ignore[arg-type]
        ipfs_car = REPO_ROOT / "node_modules" / ".bin" / "ipfs-car"
        car_seconds, car_rss, _ = _measure(
            [str(ipfs_car), "pack", str(work / "input.bin"), "--no-wrap", "--output", str(work / "js.car")]
        )
        rows.append(("ipfs-car pack (npm)", car_seconds, car_rss))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sha_rate = size / rows[0][1]
    print(f"input: {args.size_mib} MiB (G1-style ChaCha20 bytes), {os.cpu_count()} CPUs")
    print(f"{'case':<22}{'MiB/s':>10}{'vs sha256':>11}{'peak RSS MiB':>14}")
    for name, seconds, rss in rows:
        rate = size / seconds
        print(f"{name:<22}{rate / 2**20:>10.0f}{rate / sha_rate:>11.2f}{rss / 2**20:>14.0f}")
    for case in ("hash-v0", "hash-v1"):
        print(f"{case} root: {results[case]['cid']}")
    ours = size / min(rows[1][1], rows[2][1])
    print(f"only-hash import vs ipfs-car pack: {ours / (size / car_seconds):.1f}x")


if __name__ == "__main__":
    main()
