import io
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinledger.crypto import (
    Envelope,
    MalformedEnvelope,
    NotARecipient,
    TamperedCiphertext,
    TamperedEnvelope,
    TruncatedCiphertext,
    open_bytes,
    open_stream,
    seal_bytes,
    seal_stream,
    shred,
)
from twinledger.crypto.stream import A_BYTES, HEADER_BYTES
from twinledger.identity import DidKey

CHUNK = 1024


@pytest.fixture(scope="module")
def keys():
    return DidKey.generate(), DidKey.generate(), DidKey.generate()  # owner, node, outsider


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5 * CHUNK + 3), chunk=st.sampled_from([1, 7, CHUNK]))
def test_round_trip_any_size(keys, data, chunk):
    owner, node, _ = keys
    envelope, ciphertext = seal_bytes(data, [owner.did, node.did], chunk_size=chunk)
    assert open_bytes(envelope, ciphertext, owner) == data
    assert open_bytes(Envelope.from_json(envelope.to_json()), ciphertext, node) == data


def test_exact_multiple_of_chunk_and_empty(keys):
    owner, _, _ = keys
    for data in (b"", b"x" * CHUNK, b"x" * 3 * CHUNK):
        envelope, ciphertext = seal_bytes(data, [owner.did], chunk_size=CHUNK)
        assert open_bytes(envelope, ciphertext, owner) == data


def test_fresh_data_key_per_snapshot(keys):
    owner, _, _ = keys
    first = seal_bytes(b"same", [owner.did])
    second = seal_bytes(b"same", [owner.did])
    assert first[1] != second[1]
    assert first[0].recipients[0].sealed_key != second[0].recipients[0].sealed_key


def test_owner_opens_with_wallet_key_alone(keys):
    owner, node, _ = keys
    envelope, ciphertext = seal_bytes(b"state of the twin", [node.did, owner.did])
    wallet_copy = DidKey.from_jwk(owner.to_jwk())  # what the wallet file holds, no node involved
    assert open_bytes(Envelope.from_json(envelope.to_json()), ciphertext, wallet_copy) == b"state of the twin"


def test_outsider_is_not_a_recipient(keys):
    owner, node, outsider = keys
    envelope, ciphertext = seal_bytes(b"secret", [owner.did, node.did])
    with pytest.raises(NotARecipient):
        open_bytes(envelope, ciphertext, outsider)


def test_crypto_shredding(keys):
    owner, node, _ = keys
    envelope, ciphertext = seal_bytes(b"twin-plaintext-marker", [owner.did, node.did])
    node_only_removed = shred(envelope, [node.did])
    assert open_bytes(node_only_removed, ciphertext, owner) == b"twin-plaintext-marker"
    with pytest.raises(NotARecipient):
        open_bytes(node_only_removed, ciphertext, node)
    shredded = Envelope.from_json(shred(envelope).to_json())
    assert shredded.recipients == ()
    for holder in (owner, node):
        with pytest.raises(NotARecipient):
            open_bytes(shredded, ciphertext, holder)
    assert b"twin-plaintext-marker" not in ciphertext
    assert b"twin-plaintext-marker" not in shredded.to_json().encode()


def _sealed(keys, n_chunks=4):
    owner, _, _ = keys
    data = bytes(range(256)) * (n_chunks * CHUNK // 256)
    envelope, ciphertext = seal_bytes(data, [owner.did], chunk_size=CHUNK)
    return owner, envelope, ciphertext


def _chunks(ciphertext):
    body = ciphertext[HEADER_BYTES:]
    size = CHUNK + A_BYTES
    return ciphertext[:HEADER_BYTES], [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("position", [0, HEADER_BYTES + 5, HEADER_BYTES + CHUNK + A_BYTES + 100, -1])
def test_flipped_byte_detected(keys, position):
    owner, envelope, ciphertext = _sealed(keys)
    tampered = bytearray(ciphertext)
    tampered[position] ^= 0x01
    with pytest.raises(TamperedCiphertext):
        open_bytes(envelope, bytes(tampered), owner)


def test_reordered_chunks_detected(keys):
    owner, envelope, ciphertext = _sealed(keys)
    header, chunks = _chunks(ciphertext)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    with pytest.raises(TamperedCiphertext):
        open_bytes(envelope, header + b"".join(chunks), owner)


def test_dropped_middle_chunk_detected(keys):
    owner, envelope, ciphertext = _sealed(keys)
    header, chunks = _chunks(ciphertext)
    with pytest.raises(TamperedCiphertext):
        open_bytes(envelope, header + b"".join(chunks[:1] + chunks[2:]), owner)


def test_truncation_at_chunk_boundary_detected(keys):
    owner, envelope, ciphertext = _sealed(keys)
    header, chunks = _chunks(ciphertext)
    with pytest.raises(TruncatedCiphertext):
        open_bytes(envelope, header + b"".join(chunks[:-1]), owner)
    with pytest.raises(TruncatedCiphertext):
        open_bytes(envelope, ciphertext[: HEADER_BYTES - 1], owner)


def test_trailing_data_detected(keys):
    owner, envelope, ciphertext = _sealed(keys)
    with pytest.raises(TamperedCiphertext, match="follows"):
        open_bytes(envelope, ciphertext + b"x", owner)


def test_envelope_chunk_size_change_detected(keys):
    owner, envelope, ciphertext = _sealed(keys)
    data = json.loads(envelope.to_json())
    data["chunk_size"] = CHUNK * 2
    with pytest.raises(TamperedCiphertext):
        open_bytes(Envelope.from_dict(data), ciphertext, owner)


def test_tampered_sealed_key(keys):
    owner, envelope, ciphertext = _sealed(keys)
    data = json.loads(envelope.to_json())
    sealed = data["recipients"][0]["sealed_key"]
    data["recipients"][0]["sealed_key"] = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    with pytest.raises(TamperedEnvelope):
        open_bytes(Envelope.from_dict(data), ciphertext, owner)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update({"version": 2}),
        lambda d: d.update({"alg": "aes-gcm"}),
        lambda d: d.update({"chunk_size": 0}),
        lambda d: d.update({"chunk_size": "1024"}),
        lambda d: d.pop("key_wrap"),
        lambda d: d.update({"extra": 1}),
        lambda d: d["recipients"].append(dict(d["recipients"][0])),
        lambda d: d["recipients"][0].update({"sealed_key": "%%%"}),
        lambda d: d.update({"recipients": {}}),
    ],
)
def test_malformed_envelopes(keys, mutate):
    _, envelope, _ = _sealed(keys)
    data = json.loads(envelope.to_json())
    mutate(data)
    with pytest.raises(MalformedEnvelope):
        Envelope.from_json(json.dumps(data))
    with pytest.raises(MalformedEnvelope):
        Envelope.from_json(b"\xff not json")


def test_no_recipients_refused():
    with pytest.raises(MalformedEnvelope):
        seal_bytes(b"x", [])


class _Zeros(io.RawIOBase):
    """A large source produced on demand, so the test measures the cipher's memory, not the input's."""

    def __init__(self, size):
        self.remaining = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.remaining)
        buffer[:n] = b"\x00" * n
        self.remaining -= n
        return n


class _Sink(io.RawIOBase):
    def __init__(self):
        self.parts = 0
        self.size = 0

    def writable(self):
        return True

    def write(self, data):
        self.size += len(data)
        return len(data)


def test_streams_in_flat_memory(keys):
    owner, _, _ = keys
    size = 32 * 1024 * 1024
    chunk = 64 * 1024
    tracemalloc.start()
    sink = _Sink()
    envelope = seal_stream(_Zeros(size), sink, [owner.did], chunk_size=chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sink.size == HEADER_BYTES + size + (size // chunk) * A_BYTES
    assert peak < 8 * chunk  # a few chunks in flight, independent of the 32 MiB stream

    ciphertext = io.BytesIO()
    envelope = seal_stream(_Zeros(4 * chunk + 5), ciphertext, [owner.did], chunk_size=chunk)
    ciphertext.seek(0)
    out = _Sink()
    assert open_stream(envelope, ciphertext, out, owner) == 4 * chunk + 5
