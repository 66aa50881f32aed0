"""Where the gas of an operation goes, from an opcode trace of anvil (`--steps-tracing`).

    python scripts/bench/gas_trace.py                      # grant and grantBySig
    python scripts/bench/gas_trace.py revoke commitUpdate  # any operation scripts/bench/gas.py runs

Each operation's gasUsed is split into what the EVM's price list fixes (transaction base, calldata, storage reads and
writes, the log, precompiles) and the instructions the compiler and we wrote. Those are split again at the first
storage read: before it run the selector dispatch and the ABI decoding, which Solidity generates. This is how
docs/gas.md accounts for the gas that `grant` and `grantBySig` spend above their floors.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gas import deployed_chain, run_operations

TX_BASE = 21_000
PRECOMPILE_CALL = 100  # a warm STATICCALL; the precompile's own price is added from the trace's depth-2 frame
FIXED_OPS = ("SLOAD", "SSTORE", "LOG0", "LOG1", "LOG2", "LOG3", "LOG4")


@dataclass(frozen=True)
class Breakdown:
    name: str
    gas_used: int
    calldata: int
    fixed: dict[str, int]
    precompiles: int
    before_first_sload: int
    instructions: int
    top: list[tuple[str, int]]


def calldata_gas(data: bytes) -> int:
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def breakdown(w3: Any, name: str, tx_hash: str) -> Breakdown:
    tx = w3.eth.get_transaction(tx_hash)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    trace = w3.provider.make_request("debug_traceTransaction", [tx_hash, {"disableStorage": True}])["result"]
    steps = [s for s in trace["structLogs"] if s["depth"] == 1]
    if not steps:
        raise SystemExit("the trace has no steps: anvil must run with --steps-tracing")
    fixed: Counter[str] = Counter()
    other: Counter[str] = Counter()
    precompiles = 0
    before_first_sload = None
    spent = 0
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        op, cost = step["op"], step["gasCost"]
        if op in ("STATICCALL", "CALL") and following is not None:
            # gasCost of a call counts the gas it forwards: what it really spent is the drop in gas across it.
            used = step["gas"] - following["gas"]
            precompiles += used - PRECOMPILE_CALL
            other[op] += PRECOMPILE_CALL
            spent += used
            continue
        if op == "SLOAD" and before_first_sload is None:
            before_first_sload = spent
        if op in FIXED_OPS:
            fixed[op] += cost
        else:
            other[op] += cost
        spent += cost
    data = bytes(tx["input"])
    return Breakdown(
        name=name,
        gas_used=int(receipt["gasUsed"]),
        calldata=calldata_gas(data),
        fixed=dict(fixed),
        precompiles=precompiles,
        before_first_sload=before_first_sload or 0,
        instructions=sum(other.values()),
        top=other.most_common(6),
    )


def unaccounted(row: Breakdown) -> int:
    """Gas the parts do not explain: refunds, or a bug here."""
    return row.gas_used - TX_BASE - row.calldata - sum(row.fixed.values()) - row.precompiles - row.instructions


def trace(operations: list[str]) -> list[Breakdown]:
    """Run every operation on a fresh tracing anvil and break down the named ones."""
    with deployed_chain(anvil_args=("--steps-tracing",)) as (rpc, deployment):
        results = run_operations(rpc, deployment)
        unknown = [name for name in operations if name not in results]
        if unknown:
            raise SystemExit(f"unknown operation(s) {unknown}; choose from: {', '.join(results)}")
        w3 = Web3(Web3.HTTPProvider(rpc))
        return [breakdown(w3, name, results[name].tx_hash) for name in operations]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("operations", nargs="*", default=["grant", "grantBySig (owner's first)"])
    args = parser.parse_args()
    rows = trace(args.operations)
    table = Table(title="where the gas goes (anvil --steps-tracing)")
    table.add_column("part")
    for row in rows:
        table.add_column(row.name, justify="right")

    def line(label: str, values: list[int]) -> None:
        table.add_row(label, *(f"{v:,}" for v in values))

    line("gasUsed", [r.gas_used for r in rows])
    line("transaction base", [TX_BASE for _ in rows])
    line("calldata", [r.calldata for r in rows])
    for op in FIXED_OPS:
        if any(op in r.fixed for r in rows):
            line(op, [r.fixed.get(op, 0) for r in rows])
    line("precompiles (ecrecover …)", [r.precompiles for r in rows])
    line("instructions", [r.instructions for r in rows])
    line("  of which before the first SLOAD (dispatch, ABI decoding, …)", [r.before_first_sload for r in rows])
    line(
        "unaccounted (refunds; 0 when the parts add up)",
        [r.gas_used - TX_BASE - r.calldata - sum(r.fixed.values()) - r.precompiles - r.instructions for r in rows],
    )
    line("  ratio of instructions to gasUsed (%)", [round(100 * r.instructions / r.gas_used) for r in rows])
    Console(emoji=False).print(table)
    for row in rows:
        print(f"{row.name}: costliest other opcodes " + ", ".join(f"{op} {gas}" for op, gas in row.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
