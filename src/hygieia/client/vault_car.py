"""``hygieia export car``: every record's ciphertext blocks in one CARv1 file.

The CAR's header names every record's CID as a root; then, record after record, the
blocks of its UnixFS DAG. Any IPFS node takes it (``ipfs dag import``) and so does
``hygieia kit restore --car``. Nothing is decrypted, so the session token is enough
(no password): the file holds only what the server and IPFS already hold.

Each record's ciphertext streams from the server (``GET /records/{id}/content``) into
the same UnixFS importer the upload used, whose blocks go straight into the file as
they are made: memory holds one 1 MiB chunk whatever the sizes. The CID the importer
computes must be the one the server lists for the record, and the byte count its size;
otherwise the export stops and the partial file is deleted. The file is written beside
the target under a temporary name (mode 0600) and renamed only when complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hygieia.client.records import RecordVerificationError, _replace_when_done
from hygieia.client.sdk import HygieiaClient, RecordItem
from hygieia.ipfs import CID, CarWriter, parse_cid

__all__ = ["CarExport", "export_car", "list_all_records"]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CarExport:
    records: int
    content_bytes: int  # ciphertext bytes of all records
    car_bytes: int  # size of the CAR file


def list_all_records(api: HygieiaClient) -> list[RecordItem]:
    """Every record the server lists for the session (ids, CIDs, sizes: small)."""
    items: list[RecordItem] = []
    cursor: str | None = None
    while True:
        page = api.list_records(limit=200, cursor=cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return items


def export_car(api: HygieiaClient, target: Path, *, progress: Progress | None = None) -> CarExport:
    """Write the whole vault to ``target`` as a CARv1 (atomically); see the module doc."""
    items = list_all_records(api)
    roots: list[CID] = []
    for item in items:
        try:
            roots.append(parse_cid(item.cid))
        except ValueError:
            raise RecordVerificationError(
                f"record {item.id}: the server lists no valid CID"
            ) from None
    content = 0
    with _replace_when_done(target, ".hygieia-car-") as out:
        writer = CarWriter(out, roots)
        for item, root in zip(items, roots, strict=True):
            counted = [0]
            with api.record_content(item.id) as chunks:
                try:
                    writer.add_file(_counting(chunks, counted, progress), expected=root)
                except ValueError:
                    raise RecordVerificationError(
                        f"record {item.id}: the server's content does not match its CID {item.cid}"
                    ) from None
            if counted[0] != item.size:
                raise RecordVerificationError(
                    f"record {item.id}: {counted[0]} bytes of content, the server lists {item.size}"
                )
            content += counted[0]
        car_bytes = writer.bytes_written
    return CarExport(records=len(items), content_bytes=content, car_bytes=car_bytes)


def _counting(
    chunks: Iterable[bytes], counted: list[int], progress: Progress | None
) -> Iterator[bytes]:
    for chunk in chunks:
        counted[0] += len(chunk)
        if progress is not None:
            progress(len(chunk))
        yield chunk
