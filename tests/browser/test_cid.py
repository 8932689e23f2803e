"""The page's content CID (ipfs-unixfs-importer) equals the server's (hygieia.ipfs)."""

from __future__ import annotations

import pytest

from hygieia.ipfs import FileImporter, parse_cid

pytestmark = pytest.mark.browser

MIB = 1024 * 1024
SIZES = [0, 1, 1000, MIB, MIB + 1, 3 * MIB + 17]


def pattern(size: int) -> bytes:
    return bytes((i * 31 + 7) & 0xFF for i in range(size))


def python_cid(data: bytes) -> str:
    importer = FileImporter(lambda cid, block: None)
    importer.write(data)
    return str(importer.finish())


def test_cids_match_python(web):
    web.goto()
    got = web.crypto(
        """async (c, sizes) => {
          const out = [];
          for (const size of sizes) {
            const data = new Uint8Array(size);
            for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
            // Fed in odd-sized pieces, as segments arrive.
            async function* pieces() {
              for (let o = 0; o < size; o += 100003) yield data.subarray(o, o + 100003);
            }
            out.push(await c.contentCid(pieces()));
          }
          return out;
        }""",
        SIZES,
    )
    for size, cid in zip(SIZES, got, strict=True):
        assert parse_cid(cid) == parse_cid(python_cid(pattern(size))), size
