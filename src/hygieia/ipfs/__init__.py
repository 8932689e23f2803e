"""IPFS formats, shared by the client and the server: CIDs, the UnixFS importer, CAR.

The client computes a record's CID before it uploads (and checks it after a download);
the server recomputes it from the bytes it receives and keeps blocks in the same
layout an IPFS node would. Both must agree byte for byte, so both use this package.
It is pure computation over bytes (standard library only): no storage, no I/O, nothing
of the server's — except :mod:`hygieia.ipfs.fetch`, which reads verified blocks from
a trustless gateway, a Kubo RPC API or a CAR file (over httpx) for the client's
server-less paths.
"""

from __future__ import annotations

from hygieia.ipfs._car import CarWriter, car_block_prefix, car_header
from hygieia.ipfs._cid import CID, DAG_PB, RAW, normalize_cid, parse_cid
from hygieia.ipfs._unixfs import CHUNK_SIZE, MAX_LINKS, DagPbNode, FileImporter, decode_dag_pb
from hygieia.ipfs.fetch import BlockSource, ContentError, open_block_source, verified_chunks

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "DAG_PB",
    "MAX_LINKS",
    "RAW",
    "BlockSource",
    "CarWriter",
    "ContentError",
    "DagPbNode",
    "FileImporter",
    "car_block_prefix",
    "car_header",
    "decode_dag_pb",
    "normalize_cid",
    "open_block_source",
    "parse_cid",
    "verified_chunks",
]
