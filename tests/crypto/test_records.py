from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest

from hygieia import crypto
from tests.support.gpg import Gpg
from tests.support.identities import Person

SMALL = 1000  # segment size for fast tests


def seal(person: Person, data: bytes, session_key: bytes, segment_size: int = SMALL) -> list[bytes]:
    return list(
        crypto.seal_segments(
            io.BytesIO(data),
            session_key=session_key,
            signer=person.key,
            size=len(data),
            segment_size=segment_size,
        )
    )


def open_all(person: Person, blob: bytes, session_key: bytes, segment_size: int = SMALL) -> bytes:
    return b"".join(
        crypto.open_segments(
            io.BytesIO(blob),
            session_key=session_key,
            signer_public_key=person.identity.public_key,
            segment_size=segment_size,
        )
    )


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 5 * SMALL, 5 * SMALL + 17])
def test_roundtrip(alice: Person, size: int) -> None:
    data = os.urandom(size)
    session_key = crypto.new_session_key()
    segments = seal(alice, data, session_key)
    assert len(segments) == crypto.segment_count(size, SMALL)
    for segment in segments:
        assert segment[:2] == b"\xd2\xff"
        assert int.from_bytes(segment[2:6], "big") == len(segment) - 6
    blob = b"".join(segments)
    assert open_all(alice, blob, session_key) == data
    checker = crypto.SegmentFramingChecker(max_packet=crypto.max_segment_packet(SMALL))
    checker.feed(blob)
    assert checker.finish() == len(segments)


def test_default_segment_size_and_large_packets_are_fixed_length(alice: Person) -> None:
    # rPGP uses partial lengths above 512 KiB; seal_segments must re-frame.
    assert crypto.SEGMENT_SIZE == 4 * 1024 * 1024
    data = os.urandom(crypto.SEGMENT_SIZE + 10)
    session_key = crypto.new_session_key()
    segments = list(
        crypto.seal_segments(
            io.BytesIO(data), session_key=session_key, signer=alice.key, size=len(data)
        )
    )
    assert len(segments) == 2
    assert all(s[:2] == b"\xd2\xff" for s in segments)
    assert len(segments[0]) - 6 <= crypto.max_segment_packet()
    assert open_all(alice, b"".join(segments), session_key, crypto.SEGMENT_SIZE) == data


def test_size_mismatch(alice: Person) -> None:
    key = crypto.new_session_key()
    with pytest.raises(ValueError):
        list(crypto.seal_segments(io.BytesIO(b"abc"), session_key=key, signer=alice.key, size=4))
    with pytest.raises(ValueError):
        list(crypto.seal_segments(io.BytesIO(b"abc"), session_key=key, signer=alice.key, size=2))


def tampered(segments: list[bytes], other_key_segment: bytes) -> dict[str, bytes]:
    s = segments
    flipped = bytearray(s[1])
    flipped[len(flipped) // 2] ^= 1
    return {
        "dropped middle": s[0] + s[2] + s[3],
        "dropped last": s[0] + s[1] + s[2],
        "reordered": s[1] + s[0] + s[2] + s[3],
        "duplicated": s[0] + s[1] + s[1] + s[2] + s[3],
        "extra segment": b"".join(s) + s[3],
        "flipped byte": s[0] + bytes(flipped) + s[2] + s[3],
        "foreign session key": s[0] + other_key_segment + s[2] + s[3],
        "truncated mid-packet": b"".join(s)[:-5],
        "empty": b"",
        "junk": os.urandom(500),
    }


@pytest.fixture(scope="module")
def sealed(alice: Person) -> tuple[bytes, bytes, list[bytes], bytes]:
    data = os.urandom(4 * SMALL - 3)
    session_key = crypto.new_session_key()
    segments = seal(alice, data, session_key)
    other = seal(alice, data, crypto.new_session_key())
    return data, session_key, segments, other[1]


@pytest.mark.parametrize(
    "case",
    [
        "dropped middle",
        "dropped last",
        "reordered",
        "duplicated",
        "extra segment",
        "flipped byte",
        "foreign session key",
        "truncated mid-packet",
        "empty",
        "junk",
    ],
)
def test_tampering_is_detected(
    alice: Person, sealed: tuple[bytes, bytes, list[bytes], bytes], case: str
) -> None:
    _, session_key, segments, foreign = sealed
    assert len(segments) == 4
    blob = tampered(segments, foreign)[case]
    with pytest.raises(crypto.DecryptionError):
        open_all(alice, blob, session_key)


def test_wrong_signer_or_key(
    alice: Person, bob: Person, sealed: tuple[bytes, bytes, list[bytes], bytes]
) -> None:
    data, session_key, segments, _ = sealed
    blob = b"".join(segments)
    assert open_all(alice, blob, session_key) == data
    with pytest.raises(crypto.DecryptionError):
        open_all(bob, blob, session_key)  # signed by alice, not bob
    with pytest.raises(crypto.DecryptionError):
        open_all(alice, blob, crypto.new_session_key())
    with pytest.raises(crypto.DecryptionError):
        b"".join(
            crypto.open_segments(
                io.BytesIO(blob), session_key=session_key, signer_public_key="not a key"
            )
        )


def test_open_with_pkesk(
    alice: Person, bob: Person, sealed: tuple[bytes, bytes, list[bytes], bytes]
) -> None:
    data, session_key, segments, _ = sealed
    pkesk = crypto.make_pkesk(session_key, bob.identity.public_key)
    assert crypto.pkesk_key_id(pkesk) == bob.identity.encryption_key_id
    opened = b"".join(
        crypto.open_segments(
            io.BytesIO(b"".join(segments)),
            pkesk=pkesk,
            key=bob.key,
            signer_public_key=alice.identity.public_key,
            segment_size=SMALL,
        )
    )
    assert opened == data
    with pytest.raises(crypto.DecryptionError):
        b"".join(
            crypto.open_segments(
                io.BytesIO(b"".join(segments)),
                pkesk=pkesk,
                key=alice.key,  # the PKESK is for bob
                signer_public_key=alice.identity.public_key,
                segment_size=SMALL,
            )
        )
    # The session key is unwrapped by hand (hygieia.crypto._opening): any change to
    # the PKESK's ephemeral point or wrapped key must fail, never yield another key.
    for offset in (12, 20, len(pkesk) - 9, len(pkesk) - 1):
        bad = bytearray(pkesk)
        bad[offset] ^= 1
        with pytest.raises(crypto.DecryptionError):
            b"".join(
                crypto.open_segments(
                    io.BytesIO(b"".join(segments)),
                    pkesk=bytes(bad),
                    key=bob.key,
                    signer_public_key=alice.identity.public_key,
                    segment_size=SMALL,
                )
            )
    with pytest.raises(ValueError):
        crypto.open_segments(io.BytesIO(b""), signer_public_key=alice.identity.public_key)


@pytest.mark.parametrize(
    ("written", "size"),
    [
        (SMALL + 1, SMALL + 1),  # a lone segment one byte too long
        (SMALL + 1, 3 * SMALL + 3),  # every segment one byte too long
        (SMALL - 1, 3 * SMALL - 3),  # middle segments one byte short
        (3 * SMALL, 3 * SMALL),  # one segment holding three
    ],
)
def test_segments_of_the_wrong_size_are_refused(alice: Person, written: int, size: int) -> None:
    """Each segment holds 16 + segment_size bytes, the last one at most that.

    Issue 9, finding 6: failed before the change, when a reader accepted any
    segment its framing limit let through (a compressed one inflated without bound).
    """
    session_key = crypto.new_session_key()
    data = os.urandom(size)
    blob = b"".join(seal(alice, data, session_key, written))
    assert open_all(alice, blob, session_key, written) == data  # well-formed at its own size
    with pytest.raises(crypto.DecryptionError):
        open_all(alice, blob, session_key)


def test_pkesk_key_id_rejects_other_packets(alice: Person) -> None:
    pkesk = crypto.make_pkesk(crypto.new_session_key(), alice.identity.public_key)
    for junk in [b"", b"\x00", pkesk[:-1], pkesk + b"\x00", b"\xd2\x05hello", os.urandom(50)]:
        with pytest.raises(crypto.InvalidFraming):
            crypto.pkesk_key_id(junk)
    with pytest.raises(crypto.InvalidKeyMaterial):
        crypto.make_pkesk(crypto.new_session_key(), alice.identity.locked_secret_key)


def test_stock_gpg_opens_each_segment(
    alice: Person, bob: Person, gpg_factory: object, tmp_path: Path
) -> None:
    data = os.urandom(3 * 700_000 + 5)
    session_key = crypto.new_session_key()
    segments = seal(alice, data, session_key, segment_size=700_000)
    pkesk = crypto.make_pkesk(session_key, bob.identity.public_key)
    (tmp_path / "pkesk.bin").write_bytes(pkesk)
    (tmp_path / "record.bin").write_bytes(b"".join(segments))
    gpg: Gpg = gpg_factory()  # type: ignore[operator]
    gpg.ok("--import", input=bob.identity.locked_secret_key.encode())
    gpg.ok("--import", input=alice.identity.public_key.encode())
    passphrase = crypto.vault_passphrase(bob.vault_key)

    # Cut the concatenation at packet boundaries (the recipe's `dd` step), then
    # `cat pkesk.bin seg_i | gpg -d | tail -c +17` per segment.
    out = b""
    for i, segment in enumerate(
        crypto.iter_packets(io.BytesIO(b"".join(segments)), max_packet=1 << 21)
    ):
        seg = tmp_path / f"seg_{i}"
        seg.write_bytes(segment)
        cmd = (
            f"cat {tmp_path / 'pkesk.bin'} {seg} | gpg --homedir {gpg.home} --batch "
            f"--pinentry-mode loopback --passphrase {passphrase} -d 2>/dev/null | tail -c +17"
        )
        result = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True)
        assert result.returncode == 0
        out += result.stdout
    assert out == data

    flipped = bytearray(segments[1])
    flipped[-30] ^= 1
    result = gpg.run("-d", input=pkesk + bytes(flipped), passphrase=passphrase)
    assert result.returncode != 0
