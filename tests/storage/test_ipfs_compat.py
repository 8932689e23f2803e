"""The local importer against a real IPFS implementation (js-ipfs over its RPC API).

CIDs are compared decoded (js-ipfs prints base58). js-ipfs hard-codes 174 links per
node, so the multi-level layout is checked with the importer's fan-out set to 174 —
and with tiny chunks, so a three-level tree costs a few MB, not 5 TB.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import httpx
import pytest

from hygieia.ipfs import FileImporter, parse_cid
from hygieia.storage import LocalBlobStore
from hygieia.storage.kubo import ADD_PARAMS

pytestmark = pytest.mark.ipfs

MiB = 1024 * 1024
JS_IPFS_MAX_LINKS = 174


def server_add(api: str, data: bytes, **params: str) -> str:
    r = httpx.post(
        f"{api}/api/v0/add",
        params={**ADD_PARAMS, **params},
        files={"file": ("blob", data)},
        timeout=300,
    )
    r.raise_for_status()
    return str(parse_cid(json.loads(r.text.strip().splitlines()[-1])["Hash"]))


def local_cid(data: bytes, **options: int) -> str:
    importer = FileImporter(lambda _cid, _block: None, **options)
    for i in range(0, len(data), 65536):
        importer.write(data[i : i + 65536])
    return str(importer.finish())


@pytest.mark.parametrize(
    "size",
    [0, 1, MiB, MiB + 1, 5 * MiB + 3, 174 * MiB],
    ids=["0B", "1B", "1MiB", "1MiB+1", "5MiB+3", "174MiB"],
)
def test_local_cid_equals_server_cid(ipfs_api: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert local_cid(data) == server_add(ipfs_api, data)


@pytest.mark.parametrize(
    ("chunk", "chunks"),
    [
        (MiB, JS_IPFS_MAX_LINKS + 1),  # two levels, real chunk size
        # Three levels: a full two-level subtree, then one more leaf (~30 s on js-ipfs).
        pytest.param(64, JS_IPFS_MAX_LINKS * JS_IPFS_MAX_LINKS + 1, marks=pytest.mark.slow),
    ],
    ids=["175x1MiB", "174^2+1x64B"],
)
def test_balanced_layout_equals_server(ipfs_api: str, chunk: int, chunks: int) -> None:
    data = random.Random(chunks).randbytes(chunk * chunks - 1 if chunk == 64 else chunk * chunks)
    if chunk == 64:
        data += b"!"  # last chunk one byte, the rest full
    expected = server_add(ipfs_api, data, chunker=f"size-{chunk}")
    assert local_cid(data, chunk_size=chunk, max_links=JS_IPFS_MAX_LINKS) == expected


def test_local_car_imports_into_the_server(ipfs_api: str, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blocks")
    data = random.Random(9).randbytes(3 * MiB + 333)
    cid = store.put(io.BytesIO(data))
    car = io.BytesIO()
    store.export_car(cid, car)
    r = httpx.post(
        f"{ipfs_api}/api/v0/dag/import",
        params={"pin-roots": "true"},
        files={"file": ("blob.car", car.getvalue())},
        timeout=60,
    )
    r.raise_for_status()
    root = r.json()["Root"]
    assert str(parse_cid(root["Cid"]["/"])) == cid
    assert root["PinErrorMsg"] == ""
    served = httpx.post(f"{ipfs_api}/api/v0/cat", params={"arg": cid}, timeout=60)
    assert served.status_code == 200
    assert served.content == data
    httpx.post(f"{ipfs_api}/api/v0/pin/rm", params={"arg": cid}, timeout=60)


def test_server_car_export_equals_local(ipfs_api: str, tmp_path: Path) -> None:
    data = random.Random(11).randbytes(2 * MiB + 1)
    cid = server_add(ipfs_api, data)
    store = LocalBlobStore(tmp_path / "blocks")
    assert store.put([data]) == cid
    local = io.BytesIO()
    store.export_car(cid, local)
    served = httpx.post(f"{ipfs_api}/api/v0/dag/export", params={"arg": cid}, timeout=60)
    assert served.content == local.getvalue()
