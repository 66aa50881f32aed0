"""Gas per ledger operation on a fresh anvil, beside peer contracts measured in the same run, and our targets.

    python scripts/bench/gas.py            # prints the tables and writes docs/gas.md (also `make gas`)
    python scripts/bench/gas.py --check    # ours only; exit 1 when an operation is outside its band

Gas is deterministic for the same bytecode, inputs and chain: tests/contracts/test_gas.py asserts that every
operation stays within BAND of its baseline in OPERATIONS. A change that moves a figure out of the band on purpose
updates that operation's baseline there (the script prints the line to paste) and reruns `make gas`.
"""

from __future__ import annotations

import argparse
import json
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
sys.path.append(str(ROOT / "scripts" / "bench"))  # after site-packages: its crypto.py, node.py shadow nothing

import peers  # noqa: E402
from peers import DEVICE_DID, GRANTEE_DID, LEAVES_CID  # noqa: E402

from twinledger.chain.client import ChainClient, TxResult  # noqa: E402
from twinledger.chain.deploy import Deployment, deploy  # noqa: E402
from twinledger.chain.ledger import GrantRequest  # noqa: E402
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port  # noqa: E402
from twinledger.chain.types import BatchKind  # noqa: E402

BAND = 0.02  # how far an operation may move from its baseline before the tests fail


@dataclass(frozen=True)
class Operation:
    name: str
    target: int | None  # from the contracts issue
    baseline: int  # gasUsed when the baseline was last set: the tests assert gasUsed within BAND of it

    @property
    def bound(self) -> int:
        return int(self.baseline * (1 + BAND))

    @property
    def floor(self) -> int:
        return int(self.baseline * (1 - BAND))


# The one place the bounds live: one operation per line, so moving one is a one-line change.
OPERATIONS = [
    Operation("register (new owner, device DID)", 90_000, 80_515),
    Operation("register (child twin, device DID)", 90_000, 65_621),
    Operation("bindDevice", None, 28_670),
    Operation("grant", 52_000, 52_451),
    Operation("grantBySig (owner's first)", 60_000, 65_443),
    Operation("grantBySig (later)", 60_000, 65_455),
    Operation("revoke", 30_000, 27_555),
    Operation("anchorSnapshot (first)", 52_000, 29_963),
    Operation("anchorSnapshot (second and later)", 35_000, 29_975),
    Operation("anchorBatch (10 leaves)", 60_000, 50_291),
    Operation("anchorBatch (10,000 leaves)", 60_000, 50_291),
    Operation("commitUpdate", 60_000, 41_765),
    Operation("commitUpdateBySig (owner-signed, relayed)", None, 48_424),
    Operation("checkpoint", 70_000, 31_475),
    Operation("createTask", None, 116_729),
    Operation("transfer (safeTransferFrom, to a new holder)", None, 62_149),
]

# What each operation is compared with: peer operations that do the same job with the same inputs (scripts/bench/
# peers.py runs them, each in the storage state its name says).
COUNTERPARTS = {
    "register (new owner, device DID)": [peers.ERC721_MINT_NEW, peers.ERC721_MINT_URI],
    "register (child twin, device DID)": [peers.ERC721_MINT_EXISTING],
    "bindDevice": [peers.ETHR_ATTRIBUTE, peers.ETHR_ATTRIBUTE_FIRST],
    "grant": [peers.ROLE_GRANT, peers.ETHR_DELEGATE, peers.EAS_ATTEST_GRANT],
    "grantBySig (owner's first)": [peers.ETHR_SIGNED_FIRST, peers.EAS_DELEGATED_FIRST],
    "grantBySig (later)": [peers.ETHR_SIGNED_LATER, peers.EAS_DELEGATED_LATER],
    "revoke": [peers.ROLE_REVOKE, peers.ETHR_REVOKE, peers.EAS_REVOKE],
    "anchorSnapshot (first)": [peers.EAS_ATTEST_SNAPSHOT],
    "anchorSnapshot (second and later)": [peers.EAS_ATTEST_SNAPSHOT],
    "anchorBatch (10,000 leaves)": [peers.EAS_ATTEST_BATCH],
    "transfer (safeTransferFrom, to a new holder)": [peers.ERC721_TRANSFER, peers.ETHR_CHANGE_OWNER],
}


def out_of_band(gas: dict[str, int]) -> list[Operation]:
    """The operations whose gasUsed left their band: a regression, or a baseline to lower after an improvement."""
    return [op for op in OPERATIONS if not op.floor <= gas[op.name] <= op.bound]


@contextmanager
def local_chain(anvil_args: Sequence[str] = ()) -> Iterator[tuple[str, Path]]:
    """A fresh anvil and a scratch directory; stopped (by PID) on the way out."""
    with tempfile.TemporaryDirectory() as tmp:
        chain = LocalChain(Path(tmp) / "chain", port=free_port(), anvil_args=anvil_args)
        status = chain.up()
        try:
            yield str(status.rpc_url), Path(tmp)
        finally:
            chain.down()


@contextmanager
def deployed_chain(anvil_args: Sequence[str] = ()) -> Iterator[tuple[str, Deployment]]:
    """A fresh anvil with the ledger deployed; stopped (by PID) on the way out."""
    with local_chain(anvil_args) as (rpc, tmp):
        deployment, _ = deploy(ChainClient(rpc, Account.from_key(DEV_KEYS[0])), tmp / "deployments")
        yield rpc, deployment


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
    done["bindDevice"] = ledger.bind_device(system, DEVICE_DID)
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
    signed = agg_federated.sign_commit(owner, task, 1, component, keccak(b"update-2"), 500, deadline=now + 3600)
    done["commitUpdateBySig (owner-signed, relayed)"] = agg_federated.commit_update_by_sig(signed)
    done["checkpoint"] = agg_federated.checkpoint(task, 1, keccak(b"model-1"), keccak(b"root"), 1, 500)
    done["transfer (safeTransferFrom, to a new holder)"] = ledger.transfer(component, relayer.address)
    return done


def measure() -> dict[str, int]:
    """Run every operation once on a fresh chain and return gasUsed by operation name."""
    with deployed_chain() as (rpc, deployment):
        return {name: result.gas_used for name, result in run_operations(rpc, deployment).items()}


def measure_with_peers() -> tuple[dict[str, int], dict[str, int]]:
    """Our operations and then every peer's on one fresh chain: gasUsed by operation name, ours and the peers'."""
    compiled = peers.compile_peers(peers.PEERS)
    with deployed_chain() as (rpc, deployment):
        ours = run_operations(rpc, deployment)
        theirs = peers.measure_peers(rpc, peers.PEERS, compiled)
    return {n: r.gas_used for n, r in ours.items()}, {n: r.gas_used for n, r in theirs.items()}


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

This analysis is written by hand (`ANALYSIS` in scripts/bench/gas.py): its figures are those of the commit that wrote
it, while the tables at the top are measured on every run.

## What the security fixes cost, and why they are worth it

- **Batches keyed by their anchorer** (`batchOf(anchorer, root)`): anyone could anchor the node's pending root
  first, as another kind and with another leaf list, and that batch could never be verified again. `anchorBatch`
  went from 50,426 to **50,291 (−135)**: the nested mapping costs one more keccak, but the slot no longer packs
  the anchorer's address, which is now the key. The new `batchOf` selector reorders the TwinLedger's dispatch
  tree: `grant` +23 (52,369 → 52,392), `revoke` and `anchorSnapshot` −22.
- **Relayed commits signed by the owner** (`commitUpdateBySig`, EIP-712): the federated flow asked owners to
  approve the node's account, which could then grant consent in their name and transfer the twin. A relayed
  commit costs **48,253** (6,584 over a direct `commitUpdate`: the `ecrecover` precompile, 3,000; the EIP-712
  hashing; 96 more bytes of calldata), paid by the node, never by approving anything. The FederatedLedger's two
  new selectors (`commitUpdateBySig`, `eip712Domain`) and the consent check shared by both commit paths cost
  `commitUpdate` +118 (41,551 → 41,669), `createTask` +90 (116,639 → 116,729), `checkpoint` +19
  (31,456 → 31,475); all stay within their bounds.
- **Consent is the owner's act alone**: `grant`, `revoke` and their batches accepted an approved operator, so an
  ERC-721 approval (which a tool may ask for anchoring) also let the operator give consent in the owner's name and
  withdraw it. They now check the owner only (`NotTwinOwner`): `grant` 8 gas cheaper (52,459 → 52,451), `revoke`
  8 (27,563 → 27,555), since no approval slot is read on the refusing path and the check is shorter.
- **Task creation and checkpoints** are limited at the node (allowed creators, the creator alone checkpoints,
  a gas budget per DID): no contract change, no gas. On chain a task is bound to the account that created it,
  the only one that may checkpoint or close it; its DID is not checked there (an Ed25519 did:key cannot be
  verified by the EVM at a sensible price): the DID signs the task record naming the account, `fl verify`
  checks it, and a task claiming someone else's DID gains nothing from the consents given to that DID, since every
  commit is the twin owner's own act.
- **Ownership periods** (a grant belongs to the period it was given in, so a twin coming back to its grantor does not
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
"""


FAIRNESS = """
How the peer figures are made comparable: `scripts/bench/peers.py` compiles every peer in the same run with
`scripts/compile.py`'s compiler and settings (solc 0.8.28 via solc-js, optimizer 10,000 runs, EVM cancun; EAS's
exact `pragma solidity 0.8.29` relaxed to `^0.8.28`, see `contracts/peers/README.md`), deploys it on the same anvil
and runs each operation once with our inputs (the same 56-character did:key, purpose code, expiry, CID). Each runs
in the storage state its name says, matched to ours: a first mint writes a new balance slot as our first
registration does; a grant or delegate writes one fresh slot as ours does; "later" signed operations bump a nonce
that is already non-zero. Where a peer cannot be put in our state the name says so: ethr-did-registry bumps an
identity's `changed` slot on every change (fresh on an identity's first), EAS's nonce has a slot of its own (fresh
on an attester's first), and our per-owner nonce shares the owner's balance slot, so our "owner's first" never
writes a fresh slot. A peer wrapper adds only what the library leaves out: a public mint on OpenZeppelin's ERC721
(open to anyone, ids from a counter starting at 1, like `register`), an admin for AccessControl. Peers that name
grantees by address (AccessControl, ethr-did-registry) get an address derived from the grantee's DID; EAS
attestations carry the DID string in their data, as our `Granted` event does. What the peers do not do is in the
operation's name or below: OpenZeppelin's roles have no expiry, scopes or DID; ethr-did-registry stores no twin;
EAS stores the whole attestation, data included, where we store one packed word and emit the rest.
"""


def render(gas: dict[str, int], peer_gas: dict[str, int]) -> str:
    lines = [
        "# Gas per operation",
        "",
        "Generated by `python scripts/bench/gas.py` (also `make gas`) on anvil 1.7.1 with the committed artifacts",
        "(solc 0.8.28, optimizer 10,000 runs, EVM cancun). Gas is deterministic: `tests/contracts/test_gas.py`",
        f"asserts every operation within {BAND:.0%} of its baseline (`OPERATIONS` in `scripts/bench/gas.py`), so a",
        "regression fails CI and an improvement asks for its baseline to be lowered. Calldata moves by 12 gas when a",
        "timestamp in the arguments has a zero byte, far inside the band. The targets are the contracts issue's.",
        "",
        "| operation | gasUsed | asserted range | target | met |",
        "|---|---:|---:|---:|:---:|",
    ]
    for op in OPERATIONS:
        used = gas[op.name]
        target = f"{op.target:,}" if op.target else "–"
        met = "–" if op.target is None else ("yes" if used <= op.target else "**no**")
        lines.append(f"| {op.name} | {used:,} | {op.floor:,}–{op.bound:,} | {target} | {met} |")
    lines += [
        "",
        "## Beside peer contracts, measured in the same run",
        "",
        "| operation | gasUsed | target | peer operation | peer gasUsed | ours ÷ peer |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for op in OPERATIONS:
        target = f"{op.target:,}" if op.target else "–"
        for peer_op in COUNTERPARTS.get(op.name, []):
            ratio = gas[op.name] / peer_gas[peer_op]
            lines.append(
                f"| {op.name} | {gas[op.name]:,} | {target} | {peer_op} | {peer_gas[peer_op]:,} | {ratio:.2f} |"
            )
    lines += [
        "",
        "A batch anchor of 10,000 receipts costs "
        f"{gas['anchorBatch (10,000 leaves)'] / 10_000:.1f} gas per receipt. createTask, commitUpdate and checkpoint",
        "have no peer that does their job.",
    ]
    return "\n".join(lines) + "\n" + FAIRNESS + ANALYSIS


def baseline_lines(gas: dict[str, int], operations: list[Operation]) -> list[str]:
    """The OPERATIONS lines that set today's figures as the baselines of `operations`, ready to paste."""
    return [
        f"    Operation({json.dumps(op.name)}, {f'{op.target:_}' if op.target else None}, {gas[op.name]:_}),"
        for op in operations
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="ours only, do not write docs/gas.md; exit 1 out of band")
    args = parser.parse_args()
    if args.check:
        gas, peer_gas = measure(), {}
    else:
        gas, peer_gas = measure_with_peers()
    table = Table(title="gas per operation (anvil)")
    for column in ("operation", "gasUsed", "baseline", "target", "best peer", "peer gasUsed"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for op in OPERATIONS:
        counterparts = COUNTERPARTS.get(op.name, [])
        best = min(counterparts, key=peer_gas.__getitem__) if counterparts and peer_gas else None
        table.add_row(
            op.name, f"{gas[op.name]:,}", f"{op.baseline:,}", f"{op.target:,}" if op.target else "–",
            best or "–", f"{peer_gas[best]:,}" if best else "–",
        )  # fmt: skip
    Console(emoji=False, width=150).print(table)
    if not args.check:
        (ROOT / "docs" / "gas.md").write_text(render(gas, peer_gas))
        print("wrote docs/gas.md")
    moved = out_of_band(gas)
    if moved:
        print(f"out of the {BAND:.0%} band: " + ", ".join(op.name for op in moved))
        print("if the change is intended, set these baselines in OPERATIONS (scripts/bench/gas.py):")
        print("\n".join(baseline_lines(gas, moved)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
