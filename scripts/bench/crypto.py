"""Benchmark the identity and encryption primitives on one core.

    .venv/bin/python scripts/bench/crypto.py [--seconds 3] [--megabytes 64]

Prints a Markdown table: signed requests verified per second (full RFC 9421 verification: parse, time
window, resolved key from the warm cache, signature, Content-Digest; replay cache excluded) for Ed25519
did:key and EIP-191 secp256k1 did:pkh, and encryption/decryption throughput as a ratio to a plain chunked
copy of the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time

from eth_account import Account

from twinledger.crypto import open_stream, seal_stream
from twinledger.identity import DidKey, DidResolver, EthereumDid, sign_request, verify_request
from twinledger.identity.keys import DidSigner

URL = "https://node.example/twins/1/snapshots/latest"
BODY = b'{"purpose":"dpv:ScientificResearch"}'


async def verifications_per_second(signer: DidSigner, seconds: float) -> float:
    resolver = DidResolver()
    requests = [sign_request(signer, "POST", URL, BODY) for _ in range(256)]
    await verify_request("POST", URL, requests[0], BODY, resolver=resolver)  # warm the resolver cache
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for headers in requests:
            await verify_request("POST", URL, headers, BODY, resolver=resolver)
        done += len(requests)
    return done / (time.perf_counter() - start)


def plain_copy(data: bytes, chunk: int) -> float:
    start = time.perf_counter()
    src, dst = io.BytesIO(data), io.BytesIO()
    while block := src.read(chunk):
        dst.write(block)
    return time.perf_counter() - start


def seal_and_open(data: bytes, chunk: int, owner: DidKey) -> tuple[float, float]:
    sealed = io.BytesIO()
    start = time.perf_counter()
    envelope = seal_stream(io.BytesIO(data), sealed, [owner.did], chunk_size=chunk)
    encrypt_s = time.perf_counter() - start
    sealed.seek(0)
    out = io.BytesIO()
    start = time.perf_counter()
    open_stream(envelope, sealed, out, owner)
    decrypt_s = time.perf_counter() - start
    assert out.getvalue() == data
    return encrypt_s, decrypt_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--chunk-kib", type=int, default=64)
    args = parser.parse_args()

    ed = asyncio.run(verifications_per_second(DidKey.generate(), args.seconds))
    eth = asyncio.run(verifications_per_second(EthereumDid(Account.create(), 1), args.seconds))

    data = os.urandom(args.megabytes * 1024 * 1024)
    chunk = args.chunk_kib * 1024
    owner = DidKey.generate()
    copy_s = min(plain_copy(data, chunk) for _ in range(3))
    enc_s, dec_s = min(seal_and_open(data, chunk, owner) for _ in range(3))
    mib = len(data) / (1024 * 1024)

    print("| measure | value |")
    print("|---|---|")
    print(f"| Ed25519 did:key requests verified / s / core | {ed:,.0f} |")
    print(f"| EIP-191 secp256k1 did:pkh requests verified / s / core | {eth:,.0f} |")
    copy_label = f"plain chunked copy, MiB/s ({args.megabytes} MiB, {args.chunk_kib} KiB chunks)"
    print(f"| {copy_label} | {mib / copy_s:,.0f} |")
    print(f"| secretstream encrypt, MiB/s (ratio to copy) | {mib / enc_s:,.0f} ({copy_s / enc_s:.3f}) |")
    print(f"| secretstream decrypt, MiB/s (ratio to copy) | {mib / dec_s:,.0f} ({copy_s / dec_s:.3f}) |")


if __name__ == "__main__":
    main()
