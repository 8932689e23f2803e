"""Readers refuse compressed packets before anything is inflated.

Issue 9, finding 6: the record format has no compression, yet rPGP inflated a
Compressed Data packet inside sealed metadata, an envelope or a segment before
any signature was checked (a 626-byte forgery became 400 MiB in the Python
client). The bombs here are signed with the reader's own valid key, so nothing
but the packet check can stop them. Each test failed before the change: the
forged metadata and envelope opened (all 256 MiB of zeros, in about a second and
256 MiB more memory), the forged segment was inflated and accepted as one
64 MiB chunk. (Segments of the wrong size: tests/crypto/test_records.py.)
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from hygieia import crypto
from tests.support.identities import Person

from .forgery import assert_unreadable, forged_message, forged_segment

MIB = 1024 * 1024


SCRIPT = r"""
import base64, io, json, resource, sys, time
from hygieia import crypto

args = json.load(open(sys.argv[1]))
key = crypto.unlock(args["locked"], base64.b64decode(args["vault"]))
blob = {k: open(v, "rb").read() for k, v in args["files"].items()}
session_key = base64.b64decode(args["session_key"])
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opens = {
    "metadata": lambda: crypto.open_message(
        blob["message"], key=key, signer_public_key=args["public"]),
    "envelope": lambda: crypto.open_session_key_envelope(
        blob["message"], key=key, signer_public_key=args["public"]),
    "segment": lambda: list(crypto.open_segments(
        io.BytesIO(blob["segment"]), session_key=session_key, signer_public_key=args["public"])),
}
out = {}
for name, run in opens.items():
    before, t0 = peak(), time.perf_counter()
    try:
        run()
        result = "opened"
    except crypto.DecryptionError:
        result = "DecryptionError"
    out[name] = {"result": result, "seconds": time.perf_counter() - t0,
                 "grew_kib": peak() - before}
print(json.dumps(out))
"""


def test_compressed_bombs_are_refused_quickly_in_flat_memory(alice: Person, tmp_path: Path) -> None:
    # 256 MiB of zeros in a 257 KiB message; 64 MiB in a 65 KiB segment (under the
    # segment packet limit, so only the check inside can refuse it).
    message = forged_message(alice.key, alice.identity.public_key, 256 * MIB)
    session_key = crypto.new_session_key()
    segment = forged_segment(alice.key, session_key, 64 * MIB)
    assert len(message) < 1024 * 1024  # under the sealed-message limit
    assert len(segment) - 6 < crypto.max_segment_packet()
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "segment").write_bytes(segment)
    args = {
        "locked": alice.identity.locked_secret_key,
        "vault": base64.b64encode(alice.vault_key).decode(),
        "public": alice.identity.public_key,
        "session_key": base64.b64encode(session_key).decode(),
        "files": {name: str(tmp_path / name) for name in ("message", "segment")},
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(result.stdout)
    print(got)
    for name in ("metadata", "envelope", "segment"):
        assert got[name]["result"] == "DecryptionError", name
        assert got[name]["grew_kib"] < 16 * 1024, name  # the bomb inflates to 64-256 MiB
        assert got[name]["seconds"] < 1.0, name


def test_compressed_small_message_is_refused_though_signed(alice: Person, bob: Person) -> None:
    """Not only bombs: no reader accepts compression at all (protocol §3)."""
    message = forged_message(alice.key, alice.identity.public_key, 100)
    session_key = crypto.new_session_key()
    segment = forged_segment(alice.key, session_key, 100)
    assert_unreadable(alice, message, segment, session_key)
