"""A SMART Health Links receiving client written from the spec text alone (HL7 SMART
Health Cards and Links IG STU1, "SMART Health Links"), for tests: it imports nothing
of Hygieia, so a link Hygieia makes is checked against the spec, not against itself.

Steps, as the spec words them: strip any viewer prefix up to ``#``; ``shlink:/`` +
base64url JSON payload with ``url``, ``key`` (43 base64url characters, 32 bytes),
``flag``; ``U``: ``GET url?recipient=``; else ``POST url`` with
``{"recipient", "passcode"?, "embeddedLengthMax"?}``, ``content-type: application/json``;
401 carries ``remainingAttempts``; each of ``files`` has ``embedded`` (a compact JWE) or
``location`` (``GET`` → ``application/jose``); the JWE is ``alg: dir``, ``enc: A256GCM``
(AES-GCM, the ASCII of the protected header as additional data), optionally ``zip: DEF``
(raw DEFLATE).
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse(link: str) -> dict[str, Any]:
    if "#" in link:
        link = link.split("#", 1)[1]
    assert link.startswith("shlink:/"), link
    payload = json.loads(_b64url(link[len("shlink:/") :]))
    assert isinstance(payload["url"], str) and len(payload["url"]) <= 128
    assert len(payload["key"]) == 43 and len(_b64url(payload["key"])) == 32
    flag = payload.get("flag", "")
    assert list(flag) == sorted(flag) and not ("P" in flag and "U" in flag)
    return dict(payload)


def decrypt(jwe: str, key: bytes) -> tuple[dict[str, Any], bytes]:
    """A compact JWE (dir, A256GCM) → (protected header, plaintext)."""
    header_b64, encrypted_key, iv, ciphertext, tag = jwe.strip().split(".")
    header = json.loads(_b64url(header_b64))
    assert header["alg"] == "dir" and header["enc"] == "A256GCM", header
    assert encrypted_key == ""
    plaintext = AESGCM(key).decrypt(
        _b64url(iv), _b64url(ciphertext) + _b64url(tag), header_b64.encode("ascii")
    )
    if header.get("zip") == "DEF":
        plaintext = zlib.decompress(plaintext, -15)
    return header, plaintext


class Refused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class File:
    content_type: str
    header: dict[str, Any]
    plaintext: bytes
    how: str  # "embedded" | "location" | "direct"


def open_link(
    link: str,
    *,
    recipient: str = "Spec reference client",
    passcode: str | None = None,
    embedded_length_max: int | None = None,
) -> list[File]:
    payload = parse(link)
    key = _b64url(payload["key"])
    with httpx.Client(timeout=30) as http:
        if "U" in payload.get("flag", ""):
            r = http.get(payload["url"], params={"recipient": recipient})
            if r.status_code != 200:
                raise Refused(r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/jose")
            header, plain = decrypt(r.text, key)
            return [File(header.get("cty", ""), header, plain, "direct")]
        body: dict[str, Any] = {"recipient": recipient}
        if passcode is not None:
            body["passcode"] = passcode
        if embedded_length_max is not None:
            body["embeddedLengthMax"] = embedded_length_max
        r = http.post(payload["url"], json=body, headers={"content-type": "application/json"})
        if r.status_code != 200:
            raise Refused(r.status_code, r.json() if r.text.startswith("{") else r.text)
        assert r.headers["content-type"].startswith("application/json")
        manifest = r.json()
        out = []
        for entry in manifest["files"]:
            if "embedded" in entry:
                if embedded_length_max is not None:
                    assert len(entry["embedded"]) <= embedded_length_max
                jwe, how = entry["embedded"], "embedded"
            else:
                f = http.get(entry["location"])
                if f.status_code != 200:
                    raise Refused(f.status_code, f.text)
                assert f.headers["content-type"].startswith("application/jose")
                jwe, how = f.text, "location"
            header, plain = decrypt(jwe, key)
            out.append(File(entry["contentType"], header, plain, how))
        return out
