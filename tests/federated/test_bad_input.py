"""Bad input: clear errors, and nothing committed or pinned."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from twinledger.errors import AuthError, IntegrityError, InvalidInput
from twinledger.federated import MalformedTensorFile, deserialize, serialize
from twinledger.federated.aggregator import Aggregator

from .conftest import AGGREGATOR_KEY, PURPOSE, Federation, initial_model, local_update


def test_tensor_file_round_trips_bit_exactly() -> None:
    arrays = [np.arange(6, dtype=np.int32).reshape(2, 3), np.array(1.5, dtype=np.float32), np.linspace(0, 1, 7)]
    data = serialize(arrays)
    back = deserialize(data)
    assert [a.shape for a in back] == [(2, 3), (), (7,)]
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back, strict=True))
    assert serialize(back) == data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"XXXX" + d[4:], "not a tensor file"),
        (lambda d: d[:-1], "header describes"),
        (lambda d: d + b"\x00", "header describes"),
        (lambda d: d[:8] + struct.pack("<I", 0) + d[12:], "declares 0 arrays"),
        (lambda d: d[:10], "too short"),
        (lambda d: d[:-8] + struct.pack("<d", float("nan")), "NaN"),
    ],
)
def test_malformed_tensor_files_are_refused(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedTensorFile, match=message):
        deserialize(mutate(serialize([np.ones((2, 2))])))


@pytest.mark.parametrize("arrays", [[], [np.array(["a"])], [np.array([1 + 2j])], [np.array([np.inf])]])
def test_unserializable_arrays_are_refused(arrays: list[np.ndarray]) -> None:
    with pytest.raises(InvalidInput):
        serialize(arrays)


@pytest.mark.chain
def test_participant_refusals_leave_nothing_pinned_or_committed(federation: Federation) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.grant(0)
    p = f.participants[0]
    twin = f.twins[0]
    pins = set(map(str, f.store.pins()))
    block = p.federated.client.w3.eth.block_number

    with pytest.raises(InvalidInput, match="does not fit the global model"):
        p.submit(spec.task_id, 1, twin, [np.zeros((3, 4)), np.zeros(3)], 5)
    with pytest.raises(InvalidInput, match=r"round 2 of task .* is not open"):
        p.submit(spec.task_id, 2, twin, local_update(1), 5)
    with pytest.raises(MalformedTensorFile):
        p.submit_file(spec.task_id, 1, twin, b"TLFT garbage", 5)
    with pytest.raises(IntegrityError, match="hashes to"):
        p.submit_file(spec.task_id, 1, twin, serialize(local_update(1)), 5, expected_digest=b"\x01" * 32)
    with pytest.raises(InvalidInput, match="num_samples"):
        p.submit(spec.task_id, 1, twin, local_update(1), 0)
    with pytest.raises(AuthError, match="neither owns"):
        f.participants[1].submit(spec.task_id, 1, twin, local_update(1), 5)

    assert set(map(str, f.store.pins())) == pins
    assert p.federated.client.w3.eth.block_number == block  # no transaction was sent

    # Only the aggregator checkpoints, and a closed round takes no more updates.
    p.submit(spec.task_id, 1, twin, local_update(1), 5)
    impostor = Aggregator(f.participants[1].federated, f.participants[1].ledger, f.store, f.catalog)
    with pytest.raises(AuthError, match="is not the aggregator"):
        impostor.aggregate_round(spec.task_id)
    f.aggregator.aggregate_round(spec.task_id)
    with pytest.raises(InvalidInput, match=r"round 1 of task .* is not open"):
        p.submit(spec.task_id, 1, twin, local_update(2), 5)


@pytest.mark.chain
def test_revocation_after_commit_excludes_the_update_and_records_why(federation: Federation) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    f.grant(0)
    f.grant(1)
    f.participants[0].submit(spec.task_id, 1, f.twins[0], local_update(1), 5)
    f.participants[1].submit(spec.task_id, 1, f.twins[1], local_update(2), 7)
    f.revoke(1)  # after the commit, before the round ends

    result = f.aggregator.aggregate_round(spec.task_id)
    assert [u.twin_id for u in result.record.included] == [f.twins[0]]
    (excluded,) = result.record.excluded
    assert excluded.twin_id == f.twins[1]
    assert "TRAIN consent was not in force" in excluded.reason
    assert result.record.total_samples == 5
    assert f.verifier.verify_round(spec.task_id, 1).ok


@pytest.mark.chain
def test_round_without_valid_update_is_not_checkpointed(federation: Federation) -> None:
    f = federation
    spec = f.aggregator.open_task(AGGREGATOR_KEY.did, PURPOSE, initial_model())
    with pytest.raises(InvalidInput, match="no valid update"):
        f.aggregator.aggregate_round(spec.task_id)
    assert f.aggregator.federated.task(spec.task_id).open_round == 1
