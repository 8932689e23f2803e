"""The SMART Health Link string: ``shlink:/`` + base64url(minified JSON payload),
optionally behind a viewer URL ending in ``#`` (SHL spec, "Construct a SMART Health
Link Payload"; protocol §9). Written by hand: it is a few lines of JSON and base64,
and no maintained Python package implements it (research/smart-health-links.md §5).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PREFIX", "InvalidLink", "LinkPayload", "decode_link", "encode_link", "encode_payload"]

PREFIX = "shlink:/"
MAX_URL = 128
MAX_LABEL = 80
KNOWN_VERSION = 1


class LinkError(Exception):
    """A link could not be made or opened (the message says why)."""


class InvalidLink(ValueError):
    """Not a SMART Health Link this client can open (the message says why)."""


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    if any(c in text for c in "+/= \n"):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class LinkPayload:
    url: str
    key: bytes
    flag: str = ""
    exp: int | None = None
    label: str | None = None
    v: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The payload's members, in the spec's order; absent ones left out."""
        out: dict[str, Any] = {"url": self.url, "key": b64url(self.key)}
        if self.exp is not None:
            out["exp"] = self.exp
        if self.flag:
            out["flag"] = self.flag
        if self.label:
            out["label"] = self.label
        if self.v is not None:
            out["v"] = self.v
        return out


def encode_payload(payload: dict[str, Any]) -> str:
    """``shlink:/…`` for a payload dict, members in the order given (minified JSON)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return PREFIX + b64url(text.encode("utf-8"))


def encode_link(payload: LinkPayload, *, viewer: str | None = None) -> str:
    """The link, behind ``viewer`` (a URL; ``#`` is appended unless it ends in one)."""
    if len(payload.url) > MAX_URL:
        raise InvalidLink(f"the manifest URL is longer than {MAX_URL} characters")
    if payload.label is not None and len(payload.label) > MAX_LABEL:
        raise InvalidLink(f"the label is longer than {MAX_LABEL} characters")
    if "P" in payload.flag and "U" in payload.flag:
        raise InvalidLink("flags P and U can't go together")
    link = encode_payload(payload.as_json())
    if viewer is None:
        return link
    return (viewer if viewer.endswith("#") else viewer + "#") + link


def decode_link(text: str) -> LinkPayload:
    """The payload of a link, bare or viewer-prefixed; :class:`InvalidLink` otherwise.

    Unknown members and flags are ignored, as the spec asks; a newer ``v`` is refused
    (the spec: warn, don't fetch).
    """
    text = text.strip()
    at = text.find(PREFIX)
    if at < 0 or (at > 0 and text[at - 1] != "#"):
        raise InvalidLink("not a SMART Health Link (no 'shlink:/')")
    body = text[at + len(PREFIX) :]
    try:
        payload = json.loads(unb64url(body).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidLink("the link's payload is not base64url JSON") from None
    if not isinstance(payload, dict):
        raise InvalidLink("the link's payload is not a JSON object")
    url, key, flag = payload.get("url"), payload.get("key"), payload.get("flag", "")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http"):
        raise InvalidLink("the link has no http(s) manifest URL")
    if not isinstance(key, str) or len(key) != 43:
        raise InvalidLink("the link's key is not 43 base64url characters")
    try:
        raw_key = unb64url(key)
    except (ValueError, binascii.Error):
        raise InvalidLink("the link's key is not base64url") from None
    if not isinstance(flag, str):
        raise InvalidLink("the link's flag is not a string")
    if "P" in flag and "U" in flag:
        raise InvalidLink("the link has both flags P and U")
    v = payload.get("v")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
        raise InvalidLink("the link's version is not an integer")
    if v is not None and v > KNOWN_VERSION:
        raise InvalidLink(f"the link is SHL version {v}; this client knows version 1")
    exp = payload.get("exp")
    exp_int = int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    label = payload.get("label")
    return LinkPayload(
        url=url,
        key=raw_key,
        flag=flag,
        exp=exp_int,
        label=label if isinstance(label, str) else None,
        v=v,
    )
