"""Passkeys (WebAuthn) as a second factor: the ceremonies, around py_webauthn.

A passkey here is only a *second* factor: the password's ``auth_key`` proof comes
first, and the passkey proves possession of a device on top. Nothing about the vault
keys changes; the server stores the credential's public key and its sign count only.

What this module decides (protocol §10, "Passkeys"):

- **Relying party.** The RP ID is the host name of ``HYGIEIA_PUBLIC_URL`` if it is set,
  else the host name the request came to (already checked against
  ``HYGIEIA_ALLOWED_HOSTS`` by ``api/hosts.py``). The expected origin is that origin,
  compared exactly (scheme, host and port). WebAuthn refuses IP addresses as RP IDs, so
  a server reached as ``http://127.0.0.1:8000`` answers 400 ``passkey_unavailable``:
  use ``http://localhost:8000`` (a secure context) or a real name over HTTPS.
- **Challenges** are 32 random bytes made here, stored by the caller, used once and
  dead after :data:`CHALLENGE_TTL`.
- **User verification** is "preferred": asked for, not required (the password was
  already proven; a security key without a PIN still works as a second factor).
- **Sign count**: an assertion whose counter does not grow past the stored one (when
  either is non-zero) is refused as a possible clone.
- **Binding**: a credential is accepted only for the account it was enrolled on (the
  caller looks it up by id among the account's factors; a ``userHandle``, if the
  authenticator sends one, must be that account's).

Every malformed or wrong answer raises :class:`hygieia.errors.FactorInvalid`; the
library's messages never reach the client.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hygieia.errors import FactorInvalid, PasskeyUnavailable

RP_NAME = "Hygieia"
CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)
#: How long the browser waits for the user by default (HYGIEIA_PASSKEY_TIMEOUT_SECONDS).
DEFAULT_TIMEOUT_MS = 120_000
MAX_CREDENTIAL_ID = 1023  # WebAuthn: credential ids are at most 1023 bytes

# What a malformed answer can raise inside the library (base64, CBOR, JSON, structs).
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(frozen=True)
class RelyingParty:
    """Who the ceremonies are for: the RP ID (a host name) and the one exact origin."""

    id: str
    origin: str
    name: str = RP_NAME
    timeout_ms: int = DEFAULT_TIMEOUT_MS


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what a ``user_factors`` row keeps."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]


@dataclass(frozen=True)
class StoredCredential:
    """An enrolled passkey, as the verification of an assertion needs it."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str] | None = None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def relying_party(
    *, public_url: str, scheme: str, host: str, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> RelyingParty:
    """The RP for a request: ``public_url`` wins; else the request's scheme and Host.

    ``host`` is the request's ``Host`` header (with the port), which the allowed-hosts
    middleware has already accepted. An IP address can't be an RP ID.
    """
    if public_url:
        parts = urlsplit(public_url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        name = (parts.hostname or "").lower()
    else:
        netloc = host.strip().lower()
        origin = f"{scheme.lower()}://{netloc}"
        name = (urlsplit(origin).hostname or "").lower()
    if not name or _is_ip(name):
        raise PasskeyUnavailable()
    return RelyingParty(id=name, origin=origin, timeout_ms=timeout_ms)


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def _descriptors(creds: Sequence[StoredCredential]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for cred in creds:
        transports = [
            AuthenticatorTransport(t)
            for t in cred.transports or []
            if t in AuthenticatorTransport._value2member_map_
        ]
        out.append(PublicKeyCredentialDescriptor(id=cred.credential_id, transports=transports))
    return out


def _json(options: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(options_to_json(options))
    return data


def registration_options(
    rp: RelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    existing: Sequence[StoredCredential],
    challenge: bytes,
) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptionsJSON`` for enrolling a passkey.

    The account's passkeys are excluded (one authenticator, one credential); no
    attestation is asked for (we trust no vendor list, and it would identify devices).
    """
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user_name,
        user_id=user_handle,
        challenge=challenge,
        timeout=rp.timeout_ms,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return _json(options)


def verify_registration(
    rp: RelyingParty, *, credential: Mapping[str, Any], challenge: bytes
) -> NewCredential:
    """Check a ``navigator.credentials.create()`` answer against ``challenge``."""
    try:
        verified = verify_registration_response(
            credential=dict(credential),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_presence=True,
            require_user_verification=False,
        )
        response = credential.get("response")
        raw = response.get("transports") if isinstance(response, Mapping) else None
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        raise FactorInvalid()
    transports = [
        t for t in (raw if isinstance(raw, list) else []) if isinstance(t, str) and len(t) <= 16
    ][:8]
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
    )


def authentication_options(
    rp: RelyingParty, *, allowed: Sequence[StoredCredential], challenge: bytes
) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptionsJSON`` naming the account's passkeys only."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=rp.timeout_ms,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return _json(options)


def credential_id_of(credential: Mapping[str, Any]) -> bytes:
    """The credential id an assertion claims (``rawId``), to find the stored key."""
    try:
        parsed = parse_authentication_credential_json(dict(credential))
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    if parsed.id != bytes_to_base64url(parsed.raw_id) or not parsed.raw_id:
        raise FactorInvalid()
    if len(parsed.raw_id) > MAX_CREDENTIAL_ID:
        raise FactorInvalid()
    return parsed.raw_id


def verify_assertion(
    rp: RelyingParty,
    *,
    credential: Mapping[str, Any],
    challenge: bytes,
    stored: StoredCredential,
    user_handle: bytes,
) -> int:
    """Check a ``navigator.credentials.get()`` answer; return the new sign count.

    Refused: another credential than ``stored``, a ``userHandle`` that is not
    ``user_handle``, a wrong challenge, origin or RP ID hash, a missing user-presence
    flag, a bad signature, or a sign count that did not grow.
    """
    try:
        parsed = parse_authentication_credential_json(dict(credential))
        if parsed.raw_id != stored.credential_id:
            raise FactorInvalid()
        handle = parsed.response.user_handle
        if handle is not None and handle != user_handle:
            raise FactorInvalid()
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=stored.public_key,
            credential_current_sign_count=stored.sign_count,
            require_user_verification=False,
        )
    except _MALFORMED as exc:
        raise FactorInvalid() from exc
    return verified.new_sign_count


__all__ = [
    "CHALLENGE_TTL",
    "NewCredential",
    "RelyingParty",
    "StoredCredential",
    "authentication_options",
    "credential_id_of",
    "new_challenge",
    "registration_options",
    "relying_party",
    "verify_assertion",
    "verify_registration",
]
