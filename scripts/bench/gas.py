"""Gas per ledger operation on a fresh anvil, beside peer contracts' reference figures and our targets.

    python scripts/bench/gas.py            # prints the table and writes docs/gas.md
    python scripts/bench/gas.py --check    # exit 1 when an operation exceeds its bound

Gas is deterministic for the same bytecode, inputs and chain: tests/contracts/test_gas.py asserts the bounds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk"))

from twinledger.chain.client import ChainClient, TxResult  # noqa: E402
from twinledger.chain.deploy import Deployment, deploy  # noqa: E402
from twinledger.chain.ledger import GrantRequest  # noqa: E402
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port  # noqa: E402
from twinledger.chain.types import BatchKind  # noqa: E402

DEVICE_DID = "did:key:z6MkfXXpsrRGDxsSxf473MVmg9dtsDJuJKzMZztAA2jwWhws"  # 56 chars, a typical did:key
GRANTEE_DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
LEAVES_CID = "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"

# Measured on anvil 1.7.1, solc 0.8.28, 200 runs (from the contracts issue).
REFERENCES = [
    ("EAS attest", 339_456), ("EAS revoke", 77_142),
    ("ethr-did-registry addDelegate", 55_128), ("ethr-did-registry revokeDelegate", 37_659),
    ("ethr-did-registry setAttributeSigned (first)", 80_489), ("ethr-did-registry setAttributeSigned", 46_313),
    ("OpenZeppelin ERC721 mint", 68_759), ("OpenZeppelin ERC721 mint + 59-char URI", 138_307),
    ("OpenZeppelin AccessControl grantRole", 51_454), ("OpenZeppelin AccessControl revokeRole", 29_512),
    ("floor: event-only anchor", 23_234), ("floor: fresh storage slot + event", 45_413),
]  # fmt: skip


@dataclass(frozen=True)
class Operation:
    name: str
    target: int | None  # from the contracts issue
    bound: int  # what tests assert: the target where we meet it, else today's figure (see the analysis)


OPERATIONS = [
    Operation("register (new owner, device DID)", 90_000, 90_000),
    Operation("register (child twin, device DID)", 90_000, 90_000),
    Operation("grant", 52_000, 52_450),
    Operation("grantBySig (owner's first)", 60_000, 65_470),
    Operation("grantBySig (later)", 60_000, 65_470),
    Operation("revoke", 30_000, 30_000),
    Operation("anchorSnapshot (first)", 52_000, 52_000),
    Operation("anchorSnapshot (second and later)", 35_000, 35_000),
    Operation("anchorBatch (10 leaves)", 60_000, 60_000),
    Operation("anchorBatch (10,000 leaves)", 60_000, 60_000),
    Operation("commitUpdate", 60_000, 60_000),
    Operation("checkpoint", 70_000, 70_000),
    Operation("createTask", None, 120_000),
    Operation("transfer (safeTransferFrom, to a new holder)", None, 65_000),
]


@contextmanager
def deployed_chain(anvil_args: Sequence[str] = ()) -> Iterator[tuple[str, Deployment]]:
    """A fresh anvil with the ledger deployed; stopped (by PID) on the way out."""
    with tempfile.TemporaryDirectory() as tmp:
        chain = LocalChain(Path(tmp) / "chain", port=free_port(), anvil_args=anvil_args)
        status = chain.up()
        try:
            rpc = str(status.rpc_url)
            deployment, _ = deploy(ChainClient(rpc, Account.from_key(DEV_KEYS[0])), Path(tmp) / "deployments")
            yield rpc, deployment
        finally:
            chain.down()


def run_operations(rpc: str, deployment: Deployment) -> dict[str, TxResult]:
    """Run every operation once, in an order that makes each the case its name says; results by operation name."""
    owner, relayer, aggregator = (Account.from_key(k) for k in DEV_KEYS[1:4])
    ledger, federated = deployment.bind(ChainClient(rpc, owner))
    relay_ledger, _ = deployment.bind(ChainClient(rpc, relayer))
    _, agg_federated = deployment.bind(ChainClient(rpc, aggregator))
    now = ledger.client.chain_time()
    done: dict[str, TxResult] = {}

    system, done["register (new owner, device DID)"] = ledger.register(
        "system", metadata_digest=keccak(b"meta"), device_did=DEVICE_DID
    )
    component, done["register (child twin, device DID)"] = ledger.register(
        "component", parent_id=system, device_did=DEVICE_DID
    )
    done["grant"] = ledger.grant(GrantRequest.of(system, GRANTEE_DID, "research", "read", now + 86_400))
    for label, purpose in (("grantBySig (owner's first)", "research"), ("grantBySig (later)", "maintenance")):
        request = GrantRequest.of(component, GRANTEE_DID, purpose, "read", now + 86_400)
        done[label] = relay_ledger.submit_signed(ledger.sign_grant(owner, request, deadline=now + 3600))
    done["revoke"] = ledger.revoke(system, GRANTEE_DID, "research")
    done["anchorSnapshot (first)"] = ledger.anchor_snapshot(system, 1, keccak(b"m1"))
    done["anchorSnapshot (second and later)"] = ledger.anchor_snapshot(system, 2, keccak(b"m2"))
    for label, count in (("anchorBatch (10 leaves)", 10), ("anchorBatch (10,000 leaves)", 10_000)):
        done[label] = ledger.anchor_batch(BatchKind.SNAPSHOTS, keccak(label.encode()), count, LEAVES_CID)
    task, done["createTask"] = agg_federated.create_task(GRANTEE_DID, "research", keccak(b"model-0"))
    ledger.grant(GrantRequest.of(component, GRANTEE_DID, "research", "train", now + 86_400))
    done["commitUpdate"] = federated.commit_update(task, 1, component, keccak(b"update"), 500)
    done["checkpoint"] = agg_federated.checkpoint(task, 1, keccak(b"model-1"), keccak(b"root"), 1, 500)
    done["transfer (safeTransferFrom, to a new holder)"] = ledger.transfer(component, relayer.address)
    return done


def measure() -> dict[str, int]:
    """Run every operation once on a fresh chain and return gasUsed by operation name."""
    with deployed_chain() as (rpc, deployment):
        return {name: result.gas_used for name, result in run_operations(rpc, deployment).items()}


ANALYSIS = """
## Where `grant` and `grantBySig` miss their targets

Both carry the grantee's DID string in the `Granted` event, as the issue requires. `python scripts/bench/gas_trace.py`
splits each one's gasUsed, from an opcode trace, into what the EVM's price list fixes and the instructions we and the
compiler wrote:

| part | `grant` | `grantBySig` |
|---|---:|---:|
| transaction base | 21,000 | 21,000 |
| calldata (56-char did:key, keccak purpose; plus nonce, deadline, 65-byte signature) | 2,240 | 4,140 |
| new grant slot (cold SSTORE 0 → non-zero) | 22,100 | 22,100 |
| owner check (cold SLOAD of the twin record) | 2,100 | 2,100 |
| per-owner nonce (cold SLOAD + SSTORE of the account record, packed with the ERC-721 balance; + a warm re-read) | – | 5,100 |
| `ecrecover` precompile | – | 3,000 |
| `Granted` event (LOG4: twin, DID hash, purpose; scopes, expiry, DID string) | 3,411 | 3,411 |
| **floor: all of the above** | **50,851** | **60,851** |
| instructions (selector dispatch, ABI decoding, checks, hashing, encoding) | 1,585 | 4,592 |
| **gasUsed** | **52,436** | **65,443** |

**`grantBySig ≤ 60,000` cannot be met** while nonces are per owner and the DID string is in the event, whatever the
code: the fixed parts alone pass 60,000 before one instruction runs. Even with the leanest calldata — a 64-byte
compact signature (EIP-2098), flat arguments, the nonce read from storage instead of sent, 4-byte timestamps —
calldata costs about 3,430, and 21,000 + 3,430 + 22,100 + 2,100 + 5,000 + 3,000 + 3,411 = 60,041. Dropping an indexed
topic saves 119 and still leaves no room for the EIP-712 hashing. Meeting it needs two relaxations together: no
per-owner nonce write (−5,100) and no DID string in the event (about −1,000): 65,443 − 6,100 ≈ 59,350.

**`grant ≤ 52,000` leaves 1,149 gas for every instruction.** Solidity's selector dispatch (~210 here, a binary
search over 40 selectors) and ABI decoding of the five arguments (~500) take 710 of them before our code runs,
leaving 439 for the owner check, the DID check and hash, the slot hash, validation, packing and the event's
encoding; that code, now mostly assembly, uses 875. Closing the last 436 takes a hand-written dispatcher and decoder
for `grant` (leaving Solidity's ABI handling for the most-used write), so we stop here.

Done to get this far (53,174 → 52,369 for `grant`, 65,863 → 65,379 for `grantBySig`): grants packed by hand into one
word; a grant's slot is one keccak of (twin, DID hash, purpose) instead of three nested mapping hashes; the DID is
checked and hashed from the copy the event needs, and the checks, the slot write and the event are assembly; the
owner check reads approvals only when the sender is not the owner; the DID-prefix check reads calldata directly
(a slice cost ~350 in bounds checks); the grantor is not repeated in the event (it is in storage and is always the
owner at that block); 10,000 optimizer runs instead of 200 (calls are many, deployment is once).

Tried and not kept: the via-IR pipeline (grant +500: its selector dispatch is linear and `grant` is 33rd of 40);
`uint256` instead of `uint8`/`uint64` for scopes and expiry (−111, still over, and the ABI would no longer match the
EIP-712 types); fewer public getters (no change). Not done, because each costs users more than the gas: dropping
indexed topics (auditors filter grants by DID hash and purpose), per-twin instead of per-owner nonces (−2,100,
still over), or a lazy ownership check (a grant by a non-owner would succeed silently instead of reverting).

Kept in one place rather than inlined, at a cost of 68 gas per grant: the grant-slot formula (`_grantSlot`).

Ownership periods (a grant belongs to the period it was given in, so a twin coming back to its grantor does not
revive it; see docs/architecture.md) cost `grant` 67 gas (52,369 → 52,436), `grantBySig` 64 (65,379 → 65,443),
`revoke` 12 (27,573 → 27,585), and save `transfer` 34 (62,183 → 62,149): the period shares the twin's slot (a
16-bit counter beside owner, parent, kind and head sequence; twin ids became uint40 to make room) and the grant's
(beside grantor, scopes and expiry; granted-at became 32 bits), so no operation reads or writes one more slot.
What is left is the period read from the already-loaded twin word, its place in the packed grant, and the compare
in `isAuthorized`; a transfer now writes owner and period with one SSTORE in assembly where the compiler wrote the
owner field with a read-modify-write. That is the cheapest exact rule: a timestamp instead of a counter would cost
the same and fail for a round trip inside one block, and keeping the grantor as the only check is the revival bug.
`register` pays 74–86 for the wider struct write. Worth it: without it, a reader whose grant the owner thought ended
with the sale is served what the buyer pushed.

Calldata, and so gasUsed, moves by 12 when a timestamp in the arguments has a zero byte; the bound the tests assert
for `grant` and `grantBySig` is the highest figure seen plus that, so any regression fails CI.
"""


def render(gas: dict[str, int]) -> str:
    lines = [
        "# Gas per operation",
        "",
        "Generated by `python scripts/bench/gas.py` (also `make gas`) on anvil 1.7.1 with the committed artifacts",
        "(solc 0.8.28, optimizer 10,000 runs, EVM cancun). Gas is deterministic; `tests/contracts/test_gas.py` asserts",
        "the bound column.",
        "",
        "| operation | gasUsed | target | met | bound asserted |",
        "|---|---:|---:|:---:|---:|",
    ]
    for op in OPERATIONS:
        used = gas[op.name]
        target = f"{op.target:,}" if op.target else "–"
        met = "–" if op.target is None else ("yes" if used <= op.target else "**no**")
        lines.append(f"| {op.name} | {used:,} | {target} | {met} | {op.bound:,} |")
    lines += ["", "## Peer contracts (reference figures)", "", "| operation | gasUsed |", "|---|---:|"]
    lines += [f"| {name} | {value:,} |" for name, value in REFERENCES]
    lines += [
        "",
        "Ratios: `register` with a device DID costs "
        f"{gas['register (new owner, device DID)'] / 68_759:.2f}× an OpenZeppelin ERC721 mint without one; "
        f"`grant` {gas['grant'] / 51_454:.2f}× AccessControl grantRole (which stores no expiry, scope or DID); "
        f"`revoke` {gas['revoke'] / 29_512:.2f}× revokeRole; a batch anchor of 10,000 receipts "
        f"{gas['anchorBatch (10,000 leaves)'] / 10_000:.1f} gas per receipt.",
    ]
    return "\n".join(lines) + "\n" + ANALYSIS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="do not write docs/gas.md; exit 1 on a bound exceeded")
    args = parser.parse_args()
    gas = measure()
    table = Table(title="gas per operation (anvil)")
    for column in ("operation", "gasUsed", "target", "ratio to target"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for op in OPERATIONS:
        ratio = f"{gas[op.name] / op.target:.3f}" if op.target else "–"
        table.add_row(op.name, f"{gas[op.name]:,}", f"{op.target:,}" if op.target else "–", ratio)
    Console(emoji=False).print(table)
    over = [op.name for op in OPERATIONS if gas[op.name] > op.bound]
    if not args.check:
        (ROOT / "docs" / "gas.md").write_text(render(gas))
        print("wrote docs/gas.md")
    if over:
        print("over bound: " + ", ".join(over))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
