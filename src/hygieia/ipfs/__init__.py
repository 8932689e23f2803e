"""IPFS formats, shared by the client and the server: CIDs, the UnixFS importer, CAR.

The client computes a record's CID before it uploads (and checks it after a download);
the server recomputes it from the bytes it receives and keeps blocks in the same
layout an IPFS node would. Both must agree byte for byte, so both use this package.
It is pure computation over bytes (standard library only): no storage, no I/O, nothing
of the server's.
"""

from __future__ import annotations

from hygieia.ipfs._car import car_block_prefix, car_header
from hygieia.ipfs._cid import CID, DAG_PB, RAW, normalize_cid, parse_cid
from hygieia.ipfs._unixfs import CHUNK_SIZE, MAX_LINKS, DagPbNode, FileImporter, decode_dag_pb

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "DAG_PB",
    "MAX_LINKS",
    "RAW",
    "DagPbNode",
    "FileImporter",
    "car_block_prefix",
    "car_header",
    "decode_dag_pb",
    "normalize_cid",
    "parse_cid",
]
