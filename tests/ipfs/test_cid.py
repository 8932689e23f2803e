"""CID parsing: every spelling in, one canonical spelling out, anything else refused."""

from __future__ import annotations

import pytest

from hygieia.ipfs import normalize_cid, parse_cid

EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        (EMPTY_RAW, EMPTY_RAW),
        (EMPTY_RAW.upper(), EMPTY_RAW),
        ("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW", EMPTY_RAW),  # js-ipfs base58
        # CIDv0 of the empty UnixFS directory and its well-known CIDv1
        (
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354",
        ),
    ],
)
def test_spellings(spelling: str, canonical: str) -> None:
    assert normalize_cid(spelling) == canonical
    assert parse_cid(spelling) == parse_cid(canonical)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "b",
        "bafkrei/../x",
        "z0OIl",  # not base58
        "f01551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # hex
        "bafkqaaa",  # identity multihash
        "x" * 1000,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykuaa",  # too long
        "bafkréihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # non-ASCII
    ],
)
def test_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cid(bad)
