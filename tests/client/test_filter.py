"""``filter_records``: the one record filter of the CLI and SDK, pinned to the web app's.

The shared table (tests/vectors/record_filter.json) also runs in Chromium against the
web app's filter form (tests/browser/test_records.py), so both clients select alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hygieia.client.records import RecordInfo, filter_records

TABLE = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "record_filter.json").read_text("utf-8")
)


def info(key: str, meta: dict[str, Any]) -> RecordInfo:
    return RecordInfo(id=key, cid="", size=0, created_at="", meta={"v": 1, **meta})


RECORDS = [info(key, meta) for key, meta in TABLE["records"].items()]


def select(records: list[RecordInfo], **filters: str) -> list[str]:
    """The table's filter names as ``filter_records`` takes them."""
    tag = filters.pop("tag", None)
    record_type = filters.pop("type", None)
    chosen = filter_records(records, record_type=record_type, tags=[tag] if tag else [], **filters)
    return [r.id for r in chosen]


@pytest.mark.parametrize("case", TABLE["cases"], ids=lambda c: json.dumps(c["filters"]))
def test_shared_table(case: dict[str, Any]) -> None:
    assert select(RECORDS, **case["filters"]) == case["expect"]


def test_every_tag_must_be_on_the_record() -> None:
    assert [r.id for r in filter_records(RECORDS, tags=["annual", "blood"])] == ["pdf"]
    assert [r.id for r in filter_records(RECORDS, tags=["blood", "xray"])] == []


def test_lower_case_not_case_folding() -> None:
    # JavaScript's toLowerCase, as the web app: "ß" stays "ß", it does not become "ss".
    street = [info("s", {"title": "Straße", "tags": []})]
    assert select(street, text="STRASSE") == []
    assert select(street, text="STRAßE") == ["s"]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("blood\u00a0panel", ["pdf"]),  # no-break space separates words in JavaScript too
        ("blood\u3000panel", ["pdf"]),
        ("blood\ufeffpanel", ["pdf"]),  # JavaScript's \s has U+FEFF; str.split() does not
        ("blood\x1cpanel", []),  # str.split() splits on U+001C; JavaScript's \s does not
        ("blood\x85panel", []),
        (" \t\n ", ["pdf", "png", "json"]),  # nothing to search for
    ],
)
def test_words_split_as_javascript_splits_them(text: str, expect: list[str]) -> None:
    assert select(RECORDS, text=text) == expect


def test_missing_fields() -> None:
    bare = [info("bare", {})]
    assert select(bare) == ["bare"]
    assert select(bare, since="2000-01-01") == []
    assert select(bare, until="2100-01-01") == []
    assert select(bare, tag="x") == []
    assert select(bare, type="lab") == []
    assert select(bare, text="none") == []  # a missing field is not the word "none"


@pytest.mark.parametrize("bound", ["since", "until"])
def test_bad_date_bound_is_refused(bound: str) -> None:
    with pytest.raises(ValueError):
        select(RECORDS, **{bound: "yesterday"})
