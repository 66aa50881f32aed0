"""Three twins, two consenting, three rounds, a revocation between rounds 2 and 3; every round verifies."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from twinledger.errors import AuthError
from twinledger.federated import Aggregator, WeightedUpdate, fedavg, serialize
from twinledger.federated.records import pin_json
from twinledger.ipfs import ImportOptions
from twinledger.ipfs.cids import parse_cid

from .conftest import AGGREGATOR_KEY, PURPOSE, Federation, initial_model, local_update

pytestmark = pytest.mark.chain


@pytest.mark.parametrize("encrypt", [False, True])
def test_three_rounds_with_revocation(federation: Federation, encrypt: bool) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model(), encrypt_updates=encrypt)
    f.grant(0)
    f.grant(1)  # twin 2 (index 2) never consents

    participants_by_round = {1: [0, 1], 2: [0, 1], 3: [0]}
    for round_ in (1, 2, 3):
        if round_ == 3:
            f.revoke(1)
        expected: list[WeightedUpdate] = []
        for index in (0, 1, 2):
            arrays = local_update(100 * round_ + index)
            if index in participants_by_round[round_]:
                submitted = f.participants[index].submit(spec.task_id, round_, f.twins[index], arrays, 10 + index)
                expected.append(WeightedUpdate(f.twins[index], [np.asarray(a) for a in arrays], 10 + index))
                assert (submitted.record_cid in f.store.pins()) and (submitted.content_cid in f.store.pins())
            else:
                pins_before = set(map(str, f.store.pins()))
                with pytest.raises(AuthError, match="has not granted TRAIN"):
                    f.participants[index].submit(spec.task_id, round_, f.twins[index], arrays, 10)
                assert set(map(str, f.store.pins())) == pins_before  # nothing pinned for a refused update

        result = f.aggregator.aggregate_round(spec.task_id)
        assert result.record.round == round_
        assert [u.twin_id for u in result.record.included] == [f.twins[i] for i in participants_by_round[round_]]
        assert serialize(result.model) == serialize(fedavg(expected))
        assert result.tx.event("RoundCheckpointed").args["count"] == len(expected)

        report = f.verifier.verify_round(spec.task_id, round_)
        assert report.ok, report.problems
        key_args = ["--key", str(f.key_file)] if encrypt else []
        cli = f.cli("verify", str(spec.task_id), str(round_), *key_args)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "verified" in cli.stdout

    history = f.verifier.history(spec.task_id)
    assert [h.participants for h in history] == [[f.twins[0], f.twins[1]]] * 2 + [[f.twins[0]]]
    shown = f.cli("history", str(spec.task_id), "--json")
    assert shown.returncode == 0, shown.stderr
    assert [r["participants"] for r in json.loads(shown.stdout)] == [h.participants for h in history]


def test_verify_fails_when_a_pinned_update_is_altered(federation: Federation) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.grant(0)
    f.grant(1)
    first = f.participants[0].submit(spec.task_id, 1, f.twins[0], local_update(1), 5)
    f.participants[1].submit(spec.task_id, 1, f.twins[1], local_update(2), 7)
    f.aggregator.aggregate_round(spec.task_id)
    assert f.verifier.verify_round(spec.task_id, 1).ok

    # Swap the content of twin 0's update record for other bytes: re-pin a record that points at altered arrays.
    altered = serialize(local_update(3))
    altered_cid = f.store.add_stream(io.BytesIO(altered), ImportOptions()).cid
    record = f.verifier.update_record(first.record_cid).to_json() | {"content": str(altered_cid)}
    forged_record = pin_json(f.store, record)
    _, round_record = f.verifier.round_record(spec.task_id, 1)
    forged_round = round_record.to_json()
    forged_round["included"][0]["record"] = str(forged_record)
    f.catalog.put_round(spec.task_id, 1, pin_json(f.store, forged_round))

    report = f.verifier.verify_round(spec.task_id, 1)
    assert not report.ok
    assert any("hashes to the committed digest" in p for p in report.problems)
    cli = f.cli("verify", str(spec.task_id), "1")
    assert cli.returncode == 4
    assert "FAILED" in cli.stdout


def test_verify_fails_when_pinned_bytes_are_corrupted(federation: Federation) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.grant(0)
    submitted = f.participants[0].submit(spec.task_id, 1, f.twins[0], local_update(1), 5)
    f.aggregator.aggregate_round(spec.task_id)
    assert f.verifier.verify_round(spec.task_id, 1).ok

    # Flip a byte of the pinned content block on disk: the store refuses it, verification fails.
    content = parse_cid(submitted.content_cid)
    data = bytearray(f.store.get(content))
    data[-1] ^= 0xFF
    f.store._replace_raw(content, bytes(data))

    report = f.verifier.verify_round(spec.task_id, 1)
    assert not report.ok
    assert any("twin" in p and "readable" in p for p in report.problems)


def test_task_claiming_someone_elses_did_does_not_verify(
    federation: Federation, federated_as, ledger_as, accounts
) -> None:
    """The chain cannot check that a task's creator may act as the DID it names; the DID-signed task record can.
    A stranger's account opens a task as the aggregator's DID: its rounds run, and fl verify refuses them."""
    f = federation
    impostor = Aggregator(federated_as(accounts[5]), ledger_as(accounts[5]), f.store, f.catalog)  # no key of the DID
    spec = impostor.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.grant(0)
    f.participants[0].submit(spec.task_id, 1, f.twins[0], local_update(1), 5)
    impostor.aggregate_round(spec.task_id)
    report = f.verifier.verify_round(spec.task_id, 1)
    assert not report.ok
    assert any(f"signed by the aggregator DID {AGGREGATOR_KEY.did} (signer: nobody" in p for p in report.problems)

    genuine = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.participants[0].submit(genuine.task_id, 1, f.twins[0], local_update(1), 5)
    f.aggregator.aggregate_round(genuine.task_id)
    report = f.verifier.verify_round(genuine.task_id, 1)
    assert report.ok, report.problems
    assert any(f"names the task's aggregator account on chain {accounts[1].address}" in c for c in report.checks)
