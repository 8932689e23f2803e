"""The stored listing rendering (``render_public``) against pydantic's, on arbitrary rows."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hygieia.api.schemas import RecordList, render_record_list
from hygieia.services.copies import with_copies
from hygieia.services.records import RecordRow, render_public
from tests.support.rendering import record_public

rows = st.builds(
    RecordRow,
    id=st.uuids().map(str),
    cid=st.text(min_size=1, max_size=80),
    size=st.integers(min_value=0, max_value=2**62),
    segments=st.integers(min_value=0, max_value=2**31),
    created_at=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    owner_pkesk=st.binary(max_size=300),
    sealed_metadata=st.binary(max_size=3000),
    session_key_envelope=st.binary(max_size=600),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(rows, max_size=8),
    st.one_of(st.none(), st.text(max_size=60)),
    st.tuples(st.integers(0, 64), st.integers(0, 64)),
)
def test_render_record_list_is_pydantics_json(
    items: list[RecordRow], cursor: str | None, copies: tuple[int, int]
) -> None:
    expected = RecordList(items=[record_public(r, copies) for r in items], next_cursor=cursor)
    got = render_record_list([with_copies(render_public(r), *copies) for r in items], cursor)
    # Same document; and byte-identical where both encoders write the characters as
    # they are: pydantic keeps non-ASCII and DEL (0x7f) raw, the renderer escapes them
    # (both valid JSON; real CIDs and cursors are plain ASCII).
    assert RecordList.model_validate_json(got) == expected

    def plain(text: str) -> bool:
        return text.isascii() and "\x7f" not in text

    if all(plain(r.cid) for r in items) and (cursor is None or plain(cursor)):
        assert got == expected.model_dump_json().encode()


def test_whole_second_and_microsecond_timestamps() -> None:
    row = RecordRow("i", "c", 1, 1, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), b"", b"x", b"yz")
    for at in (row.created_at, row.created_at.replace(microsecond=120)):
        r = row._replace(created_at=at)
        expected = RecordList(items=[record_public(r, (1, 2))], next_cursor=None)
        got = render_record_list([with_copies(render_public(r), 1, 2)], None)
        assert got == expected.model_dump_json().encode()
