"""`Client.export` and `AsyncClient.export`: the owner's CAR streamed to a file or a stream, opened with the wallet."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tests.sdk.conftest import PASSPHRASE, Stack, client_for
from twinledger.client import AsyncClient
from twinledger.errors import AuthError
from twinledger.verify.export import ExportCar


def test_export_to_a_file_and_a_stream_and_opened_with_the_wallet(stack: Stack, tmp_path: Path):
    with client_for(stack, "owner") as tl, client_for(stack, "other") as other:
        twin = tl.register_twin("asset").twin_id
        stack.node.wait_indexed()
        tl.push_snapshot(twin, b"first")
        tl.push_snapshot(twin, b"second")
        path = tmp_path / "twin.car"
        seen: list[int] = []
        written = tl.export(twin, path, progress=lambda done, _total: seen.append(done))
        assert written == path.stat().st_size and seen[-1] == written
        assert path.stat().st_mode & 0o077 == 0  # the owner's data: a file only they read
        with pytest.raises(FileExistsError):
            tl.export(twin, path)  # never over an existing file
        stream = io.BytesIO()
        tl.export(twin, stream)
        with pytest.raises(AuthError, match="only its owner may export it"):
            other.export(twin, tmp_path / "not-mine.car")
        assert not (tmp_path / "not-mine.car").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["twin.car"]
    wallet = stack.store.unlock("owner", PASSPHRASE)
    export = ExportCar(io.BytesIO(stream.getvalue()))
    opened = io.BytesIO()
    assert export.open(1, wallet.did_key, opened).size == 5 and opened.getvalue() == b"first"
    with path.open("rb") as file:
        latest = io.BytesIO()
        ExportCar(file).open(None, wallet.did_key, latest)
        assert latest.getvalue() == b"second"

    async def exported() -> int:
        async with await AsyncClient.connect(stack.node.url, stack.rpc_url, wallet) as client:
            return await client.export(twin, tmp_path / "async.car")

    assert asyncio.run(exported()) == (tmp_path / "async.car").stat().st_size


def test_an_export_the_node_breaks_off_leaves_no_file(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from twinledger.client import NodeUnavailable
    from twinledger_node.services import bundles

    def lost(root, get):  # a content block gone from the store, found once the CAR is on its way
        raise OSError(f"block of {root} unreadable")
        yield  # pragma: no cover - a generator, as walk_dag is

    with client_for(stack, "owner") as tl:
        twin = tl.register_twin("asset").twin_id
        stack.node.wait_indexed()
        tl.push_snapshot(twin, b"reading")
        monkeypatch.setattr(bundles, "walk_dag", lost)
        with pytest.raises(NodeUnavailable, match="broke off the download after"):
            tl.export(twin, tmp_path / "twin.car")
    assert list(tmp_path.iterdir()) == []
