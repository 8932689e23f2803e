"""Thin typed client over the HTTP API (httpx). No crypto here: see ``account``/``records``.

Each call returns a small frozen dataclass mirroring the API's ``…Public`` schema, with
base64 fields decoded to ``bytes`` at this edge (``hygieia.encoding``). An answer that
does not have the documented shape raises :class:`ApiError` (``invalid_response``)
rather than surfacing later as a ``KeyError`` deep in a flow. This module imports no
server code (settings, schemas, database): the SDK installs and runs on its own.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from types import NoneType, UnionType
from typing import IO, Any, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import httpx

from hygieia import __version__
from hygieia.encoding import from_b64
from hygieia.errors import HttpError

__all__ = [
    "Account",
    "ApiError",
    "AuditDetail",
    "AuditEvent",
    "AuditPage",
    "ClientConfig",
    "EmergencyAccess",
    "EmergencyAccessList",
    "EmergencyContact",
    "EmergencyContactList",
    "EmergencyVault",
    "Factor",
    "FactorChallenge",
    "FactorConfirmed",
    "FactorList",
    "Grant",
    "GrantList",
    "GrantPage",
    "HygieiaClient",
    "InsecureTransport",
    "InvalidResponse",
    "NewAccount",
    "Prelogin",
    "RecordCopies",
    "RecordItem",
    "RecordPage",
    "RecoveryGrant",
    "ServerUnreachable",
    "SessionGrant",
    "SessionInfo",
    "SharedOwner",
    "SharedPage",
    "SharedRecord",
    "TotpEnrolment",
    "UserKey",
    "check_transport",
]

API = "/api/v1"

T = TypeVar("T")


class ApiError(Exception):
    """An error answer from the server (``code`` is the stable machine-readable code)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({code})")
        self.status = status
        self.code = code
        self.detail = detail


class ServerUnreachable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(0, "server_unreachable", detail)


class InvalidResponse(ApiError):
    """A success answer without the shape the API documents (a broken or hostile server)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, "invalid_response", detail)


@dataclass(frozen=True)
class Prelogin:
    """``GET /auth/prelogin``: what the client needs to derive its keys."""

    kdf: Mapping[str, Any]
    salt: bytes
    recovery_salt: bytes


@dataclass(frozen=True)
class NewAccount:
    """``POST /auth/signup``."""

    id: str
    email: str
    fingerprint: str


@dataclass(frozen=True)
class Account(NewAccount):
    """``GET /me`` (and the account inside a session): what sign-up answered, then the
    keys (locked or wrapped) and what the client needs to derive its own."""

    encryption_key_id: str
    public_key: str
    locked_secret_key: str
    wrapped_vault_key: bytes
    kdf: Mapping[str, Any]
    salt: bytes
    recovery_salt: bytes
    recovery_wrapped_vault_key: bytes
    created_at: str


@dataclass(frozen=True)
class SessionGrant:
    """``POST /auth/login`` and ``/auth/recover/complete``: a bearer token and the account."""

    token: str
    expires_at: str
    account: Account
    #: A recovery removed the account's second factors (protocol §10).
    factors_removed: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class FactorChallenge:
    """``POST /auth/login`` for an account with a second factor: no session yet; give
    a factor with ``pending_token`` to ``POST /auth/login/factor`` (protocol §10)."""

    factor_required: bool
    pending_token: str = field(repr=False)
    methods: tuple[str, ...]
    expires_at: str


@dataclass(frozen=True)
class Factor:
    id: str
    kind: str
    label: str
    created_at: str
    last_used_at: str | None


@dataclass(frozen=True)
class FactorList:
    factors: tuple[Factor, ...]
    backup_codes_left: int


@dataclass(frozen=True)
class TotpEnrolment:
    """A TOTP secret to put in an authenticator app; unconfirmed until a first code."""

    factor_id: str
    secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)


@dataclass(frozen=True)
class FactorConfirmed:
    factor: Factor
    #: Ten single-use backup codes, with the account's first factor only: shown once.
    backup_codes: tuple[str, ...] | None = field(repr=False)


@dataclass(frozen=True)
class RecoveryGrant:
    """``POST /auth/recover``: the vault key wrapped under the recovery code's key."""

    recovery_token: str
    recovery_salt: bytes
    recovery_wrapped_vault_key: bytes
    #: During a key rotation: the pending vault key under the same recovery key.
    pending_recovery_wrapped_vault_key: bytes | None = None


@dataclass(frozen=True)
class UserKey:
    """``POST /users/key``."""

    email: str
    fingerprint: str
    public_key: str


@dataclass(frozen=True)
class ClientConfig:
    """``GET /config``: the server's limits a client should honour."""

    idle_lock_seconds: int
    max_record_bytes: int
    max_link_bytes: int = 0


@dataclass(frozen=True)
class RecordCopies:
    """How many of the server's stores hold a good copy of the record, of how many."""

    ok: int
    total: int


@dataclass(frozen=True)
class RecordItem:
    """A record as the server indexes it: CID, sizes, the sealed key packets and its
    copies (None from a server that doesn't count them)."""

    id: str
    cid: str
    size: int
    segments: int
    created_at: str
    pkesk: bytes
    sealed_metadata: bytes
    envelope: bytes
    copies: RecordCopies | None = None


@dataclass(frozen=True)
class RecordPage:
    """``GET /records``: one page, newest first; ``next_cursor`` is ``None`` on the last."""

    items: tuple[RecordItem, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Grant:
    """A grant of one of my records to a recipient (protocol §7, ``GrantPublic``)."""

    id: str
    record_id: str
    email: str
    fingerprint: str
    created_at: str


@dataclass(frozen=True)
class GrantList:
    """``POST /grants`` and ``GET /records/{id}/grants``."""

    items: tuple[Grant, ...]


@dataclass(frozen=True)
class GrantPage:
    """``GET /grants``: one page, newest first."""

    items: tuple[Grant, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class SharedOwner:
    """Who shared a record with me, as the server says (clients pin the fingerprint)."""

    email: str
    fingerprint: str
    public_key: str


@dataclass(frozen=True)
class SharedRecord:
    """A record shared with me: the record's CID and sizes, my own key packets."""

    id: str
    grant_id: str
    cid: str
    size: int
    segments: int
    created_at: str
    granted_at: str
    owner: SharedOwner
    pkesk: bytes
    sealed_metadata: bytes


@dataclass(frozen=True)
class SharedPage:
    """``GET /shared``: one page, newest grant first."""

    items: tuple[SharedRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class AuditDetail:
    """The parts of an event's detail the server shows (sharing and link events)."""

    record_id: str | None = None
    grant_id: str | None = None
    recipient: str | None = None
    emergency_id: str | None = None
    contact: str | None = None
    link_id: str | None = None
    remaining_attempts: int | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    """``GET /audit``: one event of my trail (``client``/``user_agent``: what the client
    that caused it said it was)."""

    id: int
    event: str
    at: str
    address: str | None
    detail: AuditDetail
    client: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class AuditPage:
    """``GET /audit``: one page, newest first; ``next`` is the ``before`` of the next."""

    events: tuple[AuditEvent, ...]
    next: int | None


@dataclass(frozen=True)
class SessionInfo:
    """``GET /auth/sessions``: one of my live sessions (``current``: the one asking)."""

    id: str
    client: str
    user_agent: str | None
    address: str | None
    created_at: str
    last_used_at: str | None
    current: bool


@dataclass(frozen=True)
class EmergencyContact:
    """One of my emergency contacts (protocol §8, ``EmergencyContactPublic``)."""

    id: str
    email: str
    fingerprint: str
    wait_days: int
    created_at: str
    status: str  # idle | requested | granted
    requested_at: str | None
    release_at: str | None


@dataclass(frozen=True)
class EmergencyContactList:
    items: tuple[EmergencyContact, ...]


@dataclass(frozen=True)
class EmergencyAccess:
    """A vault I am an emergency contact for (``EmergencyAccessPublic``)."""

    id: str
    owner: SharedOwner
    wait_days: int
    created_at: str
    status: str
    requested_at: str | None
    release_at: str | None


@dataclass(frozen=True)
class EmergencyAccessList:
    items: tuple[EmergencyAccess, ...]


@dataclass(frozen=True)
class EmergencyVault:
    """A released access: the owner's vault key sealed to me, their locked key."""

    id: str
    owner: SharedOwner
    sealed_vault_key: bytes
    locked_secret_key: str


@dataclass(frozen=True)
class PendingKey:
    """A key rotation's new identity (protocol "Key rotation")."""

    fingerprint: str
    encryption_key_id: str
    public_key: str
    locked_secret_key: str
    wrapped_vault_key: bytes
    recovery_wrapped_vault_key: bytes
    started_at: str


@dataclass(frozen=True)
class KeyRotationState:
    """``GET /auth/keys/rotation``: the pending identity (None: no rotation) and what
    is still sealed to the old key."""

    pending: PendingKey | None
    remaining: int
    record_ids: tuple[str, ...]
    emergency_contact_ids: tuple[str, ...]
    link_ids: tuple[str, ...]


def _decode(cls: type[T], data: Any) -> T:
    """The answer dataclass ``cls`` from decoded JSON, each field checked against its type.

    ``bytes`` fields arrive as base64, nested answers as objects; extra fields are
    ignored (the server may add some), and fields with a default may be absent.
    Anything else missing or of the wrong type raises ``KeyError``, ``TypeError`` or
    ``ValueError``.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object")
    hints = get_type_hints(cls)
    given = [f for f in fields(cls) if f.name in data or f.default is MISSING]  # type: ignore[arg-type]
    return cls(**{f.name: _field(hints[f.name], data[f.name]) for f in given})


def _field(hint: Any, raw: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is UnionType:  # ``X | None``
        return None if raw is None else _field(next(a for a in args if a is not NoneType), raw)
    if origin is tuple:  # ``tuple[X, ...]``
        if not isinstance(raw, list):
            raise TypeError("expected a list")
        return tuple(_field(args[0], item) for item in raw)
    if is_dataclass(hint):
        return _decode(hint, raw)  # type: ignore[arg-type]
    if origin is Mapping:  # ``Mapping[str, Any]``: an object, kept as it came
        if not isinstance(raw, dict):
            raise TypeError("expected an object")
        return raw
    if hint is bytes:
        if not isinstance(raw, str):
            raise TypeError("expected a base64 string")
        return from_b64(raw)
    if hint in (str, int, bool) and type(raw) is hint:  # not ``bool`` for ``int``
        return raw
    raise TypeError(f"expected {hint}")


class InsecureTransport(ValueError):
    """A server URL over which credentials would travel in the clear (or not HTTP)."""


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def check_transport(server: str, *, allow_insecure: bool = False) -> None:
    """Refuse ``http://`` to anything but this machine unless ``allow_insecure``.

    Every request carries the session token, and login carries ``auth_key``: over plain
    HTTP anyone on the path reads them, or answers in the server's place (and hands out
    weak KDF parameters). Loopback (127.0.0.0/8, ::1, ``localhost``) never leaves the
    machine, so it stays allowed. Security review, finding 14.
    """
    parts = urlsplit(server)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme != "http" or not parts.hostname:
        raise InsecureTransport(
            f"server URL must be https://… (or http:// on this machine): {server}"
        )
    if not (_is_loopback(parts.hostname) or allow_insecure):
        raise InsecureTransport(
            f"refusing plain http:// to {parts.hostname}: your session token and login "
            "keys would travel unencrypted. Use https://, or pass --insecure if you "
            "really mean it"
        )


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
        code, detail = str(body["code"]), str(body["detail"])
    except Exception:
        code, detail = HttpError.code, f"HTTP {resp.status_code}"  # no JSON error body
    raise ApiError(resp.status_code, code, detail)


class HygieiaClient:
    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        allow_insecure: bool = False,
        client_kind: str = "cli",
        user_agent: str | None = None,
    ) -> None:
        """``client_kind`` goes out as ``X-Hygieia-Client`` ("cli", "web" or "other"):
        with the user agent, it is what the account's list of sessions and audit trail
        show of this client."""
        check_transport(server, allow_insecure=allow_insecure)
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.Client(
            base_url=self.server + API,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={
                "user-agent": user_agent or f"hygieia-cli/{__version__} (python-httpx)",
                "x-hygieia-client": client_kind,
            },
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HygieiaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, token: str | None = None) -> dict[str, str]:
        tok = token or self.token
        return {"authorization": f"Bearer {tok}"} if tok else {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers(), **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server}: {type(exc).__name__}") from exc
        _raise_for(resp)
        return resp

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        headers = {**self._headers(), **kw.pop("headers", {})}
        try:
            with self._http.stream(method, path, headers=headers, **kw) as resp:
                if not resp.is_success:
                    resp.read()
                    _raise_for(resp)
                yield resp
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server}: {type(exc).__name__}") from exc

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """The decoded JSON answer (``None`` for 204): raw access, for what has no method."""
        resp = self.request(method, path, **kw)
        return resp.json() if resp.status_code != 204 else None

    def _typed(self, answer: type[T], method: str, path: str, **kw: Any) -> T:
        resp = self.request(method, path, **kw)
        try:
            return _decode(answer, resp.json())
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidResponse(
                resp.status_code, f"unexpected answer from {self.server} to {method} {path}"
            ) from exc

    # --- accounts -----------------------------------------------------------------
    def prelogin(self, email: str) -> Prelogin:
        return self._typed(Prelogin, "GET", "/auth/prelogin", params={"email": email})

    def signup(self, body: Mapping[str, Any]) -> NewAccount:
        return self._typed(NewAccount, "POST", "/auth/signup", json=body)

    def login(self, email: str, auth_key_b64: str) -> SessionGrant | FactorChallenge:
        """A session, or (the account has a second factor) a :class:`FactorChallenge`."""
        body = {"email": email, "auth_key": auth_key_b64}
        resp = self.request("POST", "/auth/login", json=body)
        try:
            data = resp.json()
            if isinstance(data, dict) and data.get("factor_required") is True:
                return _decode(FactorChallenge, data)
            return _decode(SessionGrant, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidResponse(
                resp.status_code, f"unexpected answer from {self.server} to POST /auth/login"
            ) from exc

    def login_factor(self, pending_token: str, method: str, code: str) -> SessionGrant:
        """The login's second step: a TOTP or backup code for a pending login."""
        body = {"pending_token": pending_token, "method": method, "code": code}
        return self._typed(SessionGrant, "POST", "/auth/login/factor", json=body)

    # --- second factors (protocol §10) -------------------------------------------
    def factors(self) -> FactorList:
        return self._typed(FactorList, "GET", "/auth/factors")

    def start_totp(self, label: str | None = None) -> TotpEnrolment:
        body = {} if label is None else {"label": label}
        return self._typed(TotpEnrolment, "POST", "/auth/factors/totp", json=body)

    def confirm_totp(self, factor_id: str, code: str) -> FactorConfirmed:
        path = f"/auth/factors/totp/{factor_id}/confirm"
        return self._typed(FactorConfirmed, "POST", path, json={"code": code})

    def remove_factor(
        self, factor_id: str, auth_key_b64: str, factor: Mapping[str, Any] | None
    ) -> None:
        body = {"auth_key": auth_key_b64, "factor": factor}
        self.request("POST", f"/auth/factors/{factor_id}/remove", json=body)

    def renew_backup_codes(
        self, auth_key_b64: str, factor: Mapping[str, Any] | None
    ) -> tuple[str, ...]:
        body = {"auth_key": auth_key_b64, "factor": factor}
        answer = self.json("POST", "/auth/factors/backup-codes", json=body)
        codes = answer.get("backup_codes") if isinstance(answer, dict) else None
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise InvalidResponse(200, "unexpected answer to POST /auth/factors/backup-codes")
        return tuple(codes)

    def logout(self) -> None:
        self.request("POST", "/auth/logout")

    def me(self) -> Account:
        return self._typed(Account, "GET", "/me")

    def change_password(self, body: Mapping[str, Any]) -> None:
        self.request("POST", "/auth/password", json=body)

    def delete_account(self, auth_key_b64: str, factor: Mapping[str, Any] | None = None) -> None:
        """Delete the account and everything of it (``POST /auth/account/delete``)."""
        body = {"auth_key": auth_key_b64, "factor": factor}
        self.request("POST", "/auth/account/delete", json=body)

    def recover(self, email: str, recovery_auth_b64: str) -> RecoveryGrant:
        body = {"email": email, "recovery_auth": recovery_auth_b64}
        return self._typed(RecoveryGrant, "POST", "/auth/recover", json=body)

    def recover_complete(self, body: Mapping[str, Any]) -> SessionGrant:
        return self._typed(SessionGrant, "POST", "/auth/recover/complete", json=body)

    def user_key(self, email: str) -> UserKey:
        """Another account's public key (a stable stand-in if the email has none)."""
        return self._typed(UserKey, "POST", "/users/key", json={"email": email})

    def config(self) -> ClientConfig:
        return self._typed(ClientConfig, "GET", "/config")

    # --- records ------------------------------------------------------------------
    def list_records(self, *, limit: int = 200, cursor: str | None = None) -> RecordPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._typed(RecordPage, "GET", "/records", params=params)

    def get_record(self, record_id: str) -> RecordItem:
        return self._typed(RecordItem, "GET", f"/records/{record_id}")

    def upload_record(
        self, meta: Mapping[str, Any], content: IO[bytes], *, filename: str
    ) -> RecordItem:
        """One streaming multipart request: the ``meta`` JSON part, then ``content``."""
        return self._typed(
            RecordItem,
            "POST",
            "/records",
            data={"meta": json.dumps(meta)},
            files={"content": (filename, content, "application/octet-stream")},
        )

    @contextmanager
    def record_content(self, record_id: str) -> Iterator[Iterator[bytes]]:
        """The stored ciphertext, streamed in chunks of up to 1 MiB."""
        with self.stream("GET", f"/records/{record_id}/content") as resp:
            yield resp.iter_bytes(1 << 20)

    def delete_record(self, record_id: str) -> None:
        self.request("DELETE", f"/records/{record_id}")

    # --- sharing (protocol §7) -------------------------------------------------------
    def create_grants(self, grants: list[Mapping[str, Any]]) -> GrantList:
        """Grant records (all or none): items ``{record_id, email, pkesk, sealed_metadata}``
        with the binary fields base64."""
        return self._typed(GrantList, "POST", "/grants", json={"grants": list(grants)})

    def list_grants(self, *, limit: int = 200, cursor: str | None = None) -> GrantPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._typed(GrantPage, "GET", "/grants", params=params)

    def record_grants(self, record_id: str) -> GrantList:
        return self._typed(GrantList, "GET", f"/records/{record_id}/grants")

    def revoke_grant(self, grant_id: str) -> None:
        self.request("DELETE", f"/grants/{grant_id}")

    def list_shared(self, *, limit: int = 200, cursor: str | None = None) -> SharedPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._typed(SharedPage, "GET", "/shared", params=params)

    def get_shared(self, record_id: str) -> SharedRecord:
        return self._typed(SharedRecord, "GET", f"/shared/{record_id}")

    @contextmanager
    def shared_content(self, record_id: str) -> Iterator[Iterator[bytes]]:
        """A shared record's ciphertext, streamed in chunks of up to 1 MiB."""
        with self.stream("GET", f"/shared/{record_id}/content") as resp:
            yield resp.iter_bytes(1 << 20)

    def remove_shared(self, record_id: str) -> None:
        self.request("DELETE", f"/shared/{record_id}")

    # --- emergency access (protocol §8) ----------------------------------------------
    def add_emergency_contact(
        self, email: str, *, wait_days: int, sealed_vault_key_b64: str
    ) -> EmergencyContact:
        body = {"email": email, "wait_days": wait_days, "sealed_vault_key": sealed_vault_key_b64}
        return self._typed(EmergencyContact, "POST", "/emergency/contacts", json=body)

    def emergency_contacts(self) -> EmergencyContactList:
        return self._typed(EmergencyContactList, "GET", "/emergency/contacts")

    def remove_emergency_contact(self, contact_id: str) -> None:
        self.request("DELETE", f"/emergency/contacts/{contact_id}")

    def approve_emergency(self, contact_id: str) -> EmergencyContact:
        return self._typed(EmergencyContact, "POST", f"/emergency/contacts/{contact_id}/approve")

    def deny_emergency(self, contact_id: str) -> EmergencyContact:
        return self._typed(EmergencyContact, "POST", f"/emergency/contacts/{contact_id}/deny")

    def emergency_access(self) -> EmergencyAccessList:
        return self._typed(EmergencyAccessList, "GET", "/emergency/access")

    def request_emergency(self, access_id: str) -> EmergencyAccess:
        return self._typed(EmergencyAccess, "POST", f"/emergency/access/{access_id}/request")

    def emergency_vault(self, access_id: str) -> EmergencyVault:
        return self._typed(EmergencyVault, "GET", f"/emergency/access/{access_id}/vault")

    def emergency_records(
        self, access_id: str, *, limit: int = 200, cursor: str | None = None
    ) -> RecordPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        path = f"/emergency/access/{access_id}/records"
        return self._typed(RecordPage, "GET", path, params=params)

    def emergency_record(self, access_id: str, record_id: str) -> RecordItem:
        path = f"/emergency/access/{access_id}/records/{record_id}"
        return self._typed(RecordItem, "GET", path)

    @contextmanager
    def emergency_record_content(self, access_id: str, record_id: str) -> Iterator[Iterator[bytes]]:
        path = f"/emergency/access/{access_id}/records/{record_id}/content"
        with self.stream("GET", path) as resp:
            yield resp.iter_bytes(1 << 20)

    # --- share links (protocol §9) --------------------------------------------------
    def create_link(self, meta: Mapping[str, Any], jwes: Sequence[bytes]) -> dict[str, Any]:
        """One multipart request: the ``meta`` JSON part, then one ``file`` part per JWE
        (``LinkCreated``: the link's view and its manifest ``path``, shown once)."""
        files = [("file", (f"{i}.jwe", jwe, "application/jose")) for i, jwe in enumerate(jwes)]
        answer = self.json("POST", "/links", data={"meta": json.dumps(meta)}, files=files)
        if not isinstance(answer, dict) or not isinstance(answer.get("path"), str):
            raise InvalidResponse(201, f"unexpected answer from {self.server} to POST /links")
        return answer

    def list_links(self) -> list[dict[str, Any]]:
        answer = self.json("GET", "/links")
        if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
            raise InvalidResponse(200, f"unexpected answer from {self.server} to GET /links")
        return list(answer["items"])

    def revoke_link(self, link_id: str) -> None:
        self.request("DELETE", f"/links/{link_id}")

    # --- key and recovery-code rotation ----------------------------------------------
    def start_key_rotation(self, body: Mapping[str, Any]) -> KeyRotationState:
        return self._typed(KeyRotationState, "POST", "/auth/keys/rotation", json=body)

    def key_rotation(self) -> KeyRotationState:
        return self._typed(KeyRotationState, "GET", "/auth/keys/rotation")

    def swap_record_keys(self, record_id: str, body: Mapping[str, Any]) -> None:
        self.request("PUT", f"/records/{record_id}/keys", json=body)

    def commit_key_rotation(self, body: Mapping[str, Any]) -> None:
        self.request("POST", "/auth/keys/rotation/commit", json=body)

    def rotate_recovery(self, body: Mapping[str, Any]) -> None:
        self.request("POST", "/auth/recovery/rotate", json=body)

    def audit_page(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        since: str | None = None,
        until: str | None = None,
        kinds: Sequence[str] = (),
    ) -> AuditPage:
        """One page of my trail, newest first (``since``/``until``: ISO 8601 with an offset;
        ``kinds``: events or families such as ``record``)."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("before", before), ("since", since), ("until", until)):
            if value is not None:
                params[name] = value
        if kinds:
            params["kind"] = list(kinds)
        return self._typed(AuditPage, "GET", "/audit", params=params)

    def audit_all(
        self, *, since: str | None = None, kinds: Sequence[str] = (), page: int = 200
    ) -> Iterator[AuditEvent]:
        """Every event of my trail (from ``since``), newest first, page after page."""
        before: int | None = None
        while True:
            got = self.audit_page(limit=page, before=before, since=since, kinds=kinds)
            yield from got.events
            if got.next is None:
                return
            before = got.next

    def audit(self, *, limit: int = 100) -> tuple[AuditEvent, ...]:
        """The newest ``limit`` events of my trail."""
        return self.audit_page(limit=limit).events

    # --- sessions (protocol §11) -----------------------------------------------------
    def sessions(self) -> tuple[SessionInfo, ...]:
        resp = self.request("GET", "/auth/sessions")
        try:
            body = resp.json()
            if not isinstance(body, list):
                raise TypeError("expected a list")
            return tuple(_decode(SessionInfo, item) for item in body)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidResponse(
                resp.status_code, f"unexpected answer from {self.server} to GET /auth/sessions"
            ) from exc

    def revoke_session(self, session_id: str) -> None:
        self.request("DELETE", f"/auth/sessions/{session_id}")

    def revoke_other_sessions(self) -> int:
        answer = self.json("POST", "/auth/sessions/revoke-others")
        if not isinstance(answer, dict) or not isinstance(answer.get("revoked"), int):
            raise InvalidResponse(200, f"unexpected answer from {self.server} to revoke-others")
        return int(answer["revoked"])
