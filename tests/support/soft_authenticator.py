"""A software WebAuthn authenticator for API tests: real P-256 keys, real CBOR, real
signatures, and knobs to make every part of an answer wrong on purpose.

It answers the JSON options the server hands out the way ``@simplewebauthn/browser``
would hand the server a browser's answer (``RegistrationResponseJSON`` /
``AuthenticationResponseJSON``, base64url fields). Attestation is ``none``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cose_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    return cbor2.dumps(
        {
            1: 2,  # kty: EC2
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
    )


@dataclass
class SoftAuthenticator:
    """One credential on one device; ``sign_count`` grows by one per assertion."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes | None = None
    user_verified: bool = True

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def _flags(self, extra: int = 0) -> bytes:
        return bytes([FLAG_UP | (FLAG_UV if self.user_verified else 0) | extra])

    def register(
        self, options: dict[str, Any], *, origin: str, rp_id: str | None = None
    ) -> dict[str, Any]:
        """Answer creation options (``options`` as the server sent them)."""
        rp = rp_id or options["rp"]["id"]
        self.user_handle = unb64u(options["user"]["id"])
        attested = (
            b"\0" * 16
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + _cose_key(self.key)
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + self._flags(FLAG_AT)
            + struct.pack(">I", self.sign_count)
            + attested
        )
        att_obj = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        cid = b64u(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(att_obj),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def assert_(
        self,
        options: dict[str, Any],
        *,
        origin: str,
        rp_id: str | None = None,
        sign_count: int | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        challenge: str | None = None,
        kind: str = "webauthn.get",
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """Answer request options; each keyword argument makes one thing wrong."""
        rp = rp_id or options["rpId"]
        if sign_count is None:
            self.sign_count += 1
            sign_count = self.sign_count
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + self._flags() + struct.pack(">I", sign_count)
        )
        client_data = self._client_data(kind, challenge or options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = (key or self.key).sign(signed, ec.ECDSA(hashes.SHA256()))
        cid = b64u(self.credential_id)
        handle = user_handle if user_handle is not None else self.user_handle
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": b64u(handle) if handle else None,
            },
            "clientExtensionResults": {},
        }
