"""KuboBlobStore at the edge: a node that is down, and answers a real node gives.

The mapping tests use httpx.MockTransport for answers that are hard to provoke from a
real daemon (auth refusals, truncated bodies, base58 pin lists); everything else runs
against js-ipfs in the contract suite.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest

from hygieia.errors import StorageUnavailable
from hygieia.storage import BlobNotFound, KuboBlobStore, MemoryBlobStore

Handler = Callable[[httpx.Request], httpx.Response]
CONTENT = b"hello hygieia"
CID = MemoryBlobStore().put([CONTENT])
CID_BASE58 = "zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW"  # the empty raw block
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def mocked(handler: Handler, **kwargs: object) -> KuboBlobStore:
    return KuboBlobStore(
        "http://ipfs.invalid:5001",
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


def error(message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_server_down_is_storage_unavailable() -> None:
    store = KuboBlobStore(f"http://127.0.0.1:{closed_port()}", timeout=2)
    for call in (store.has, store.get, store.pin, store.unpin):
        with pytest.raises(StorageUnavailable) as info:
            call(CID)
        assert isinstance(info.value.__cause__, httpx.HTTPError)
    with pytest.raises(StorageUnavailable):
        store.put([b"data"])
    with pytest.raises(StorageUnavailable):
        list(store.pins())


def test_timeout_is_storage_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(StorageUnavailable):
        mocked(handler).has(CID)


def test_every_request_has_a_timeout_and_the_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Key": CID, "Size": len(CONTENT)})

    store = mocked(handler, auth_header="Basic dXNlcjpwYXNz", timeout=7.0)
    assert store.has(CID)
    (request,) = seen
    assert request.headers["Authorization"] == "Basic dXNlcjpwYXNz"
    assert request.extensions["timeout"]["read"] == 7.0
    assert request.url.path == "/api/v0/block/stat"
    assert request.url.params["offline"] == "true"


def test_not_found_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("block/stat"):
            return error(f"block was not found locally (offline): ipld: could not find {CID}")
        return error("unexpected")

    store = mocked(handler)
    assert not store.has(CID)
    with pytest.raises(BlobNotFound):
        store.get(CID)
    with pytest.raises(BlobNotFound):
        store.pin(CID)


def test_node_side_lookup_deadline_means_absent() -> None:
    store = mocked(lambda request: error("Failed to get block stats: request timed out"))
    assert not store.has(CID)


def test_other_errors_are_storage_unavailable() -> None:
    for response in (
        error("api refused", status=403),
        httpx.Response(401, text="unauthorized"),
        httpx.Response(404, text="404 page not found"),  # no such endpoint: not a blob
        error("repo is locked"),
        httpx.Response(502, text="<html>bad gateway</html>"),
    ):
        store = mocked(lambda request, r=response: r)  # type: ignore[misc]
        with pytest.raises(StorageUnavailable) as info:
            store.has(CID)
        assert not isinstance(info.value, BlobNotFound)


def test_unpin_of_unpinned_is_a_no_op() -> None:
    store = mocked(lambda request: error("not pinned or pinned indirectly"))
    store.unpin(CID)


def test_truncated_cat_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("block/stat"):
            return httpx.Response(200, json={"Key": CID, "Size": len(CONTENT)})
        return httpx.Response(200, content=CONTENT[:-3])  # a body cut short

    stream = mocked(handler).get(CID)
    with pytest.raises(StorageUnavailable):
        b"".join(stream)


def test_cids_from_the_node_are_normalised() -> None:
    lines = [
        {"Cid": CID_BASE58, "Type": "recursive"},
        {"Cid": "bafyreib5w7zv2jstmbm7bj4yhfsd5o5v3s2xrwmo7ua3q4dzbp6y5bjq4e", "Type": "recursive"},
        {"Cid": CID, "Type": "recursive"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["type"] == "recursive"
        return httpx.Response(200, text="\n".join(json.dumps(x) for x in lines) + "\n")

    assert list(mocked(handler).pins()) == [EMPTY, CID]


def test_pins_from_a_node_without_streaming() -> None:
    body = {"Keys": {CID_BASE58: {"Type": "recursive"}}}
    assert list(mocked(lambda request: httpx.Response(200, json=body)).pins()) == [EMPTY]


def test_put_sends_a_car_in_a_streamed_multipart_body() -> None:
    received: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("dag/import"):
            received["chunked"] = "content-length" not in request.headers
            received["params"] = dict(request.url.params)
            received["body"] = request.read()
            return httpx.Response(200, text="")
        return httpx.Response(200, json={"Key": CID, "Size": len(CONTENT)})

    assert mocked(handler).put(iter([CONTENT[:5], CONTENT[5:]])) == CID
    assert received["chunked"] is True
    assert received["params"] == {"pin-roots": "false", "stats": "false"}
    body = received["body"]
    assert isinstance(body, bytes) and CONTENT in body
