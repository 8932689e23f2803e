"""Account flows done client-side: key derivation, identity, vault key wrapping.

Nothing secret (password, master key, wrap key, vault key, unlocked secret key) is ever
sent; only ``auth_key``, the recovery verifier and wrapped/locked material.

The KDF parameters and salt a server hands out are checked before a password is derived
with them (:mod:`hygieia.client.kdf_policy`): never weaker than the client's floor, and,
with a :class:`~hygieia.client.kdf_policy.KnownKdf`, never weaker than last time nor
with a silently changed salt. New passwords must pass :mod:`hygieia.client.passwords`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hygieia import crypto
from hygieia.client.kdf_policy import KdfRefused, KnownKdf, Remembered, kdf_floor, vet_kdf
from hygieia.client.passwords import check_export_passphrase, check_new_password
from hygieia.client.sdk import (
    FactorChallenge,
    HygieiaClient,
    NewAccount,
    PendingKey,
    SessionGrant,
)
from hygieia.encoding import from_b64, to_b64


@dataclass(frozen=True)
class SignupResult:
    recovery_code: str
    account: NewAccount


@dataclass(frozen=True)
class LoggedIn(SessionGrant):
    """A session and the vault key unwrapped with it (client memory only; never sent)."""

    vault_key: bytes = field(repr=False)
    #: The password-derived key that wraps the vault key (None when the session was
    #: opened otherwise): it also unwraps a pending key rotation's new vault key.
    wrap_key: bytes | None = field(default=None, repr=False)

    def unlock(self) -> crypto.UnlockedKey:
        return crypto.unlock(self.account.locked_secret_key, self.vault_key)


#: Asked for a second factor when a login needs one: the challenge in, (method, code) out.
FactorPrompt = Callable[[FactorChallenge], tuple[str, str]]


class FactorNeeded(Exception):
    """The account has a second factor and the login was given no way to ask for it."""

    def __init__(self, challenge: FactorChallenge) -> None:
        super().__init__("this account needs a second factor (an authenticator or backup code)")
        self.challenge = challenge


_TOTP_RE = re.compile(r"^\d{6}$")


def factor_answer(code: str) -> tuple[str, str]:
    """What a typed code is: six digits are a TOTP code, anything else a backup code."""
    code = "".join(code.split())
    return ("totp", code) if _TOTP_RE.match(code) else ("backup_code", code)


def factor_proof(code: str | None) -> dict[str, str] | None:
    """The ``FactorProof`` body for a typed code (None: the account has no factor)."""
    if code is None:
        return None
    method, value = factor_answer(code)
    return {"method": method, "code": value}


class RotationError(Exception):
    """A key-rotation step the user can act on (:mod:`hygieia.client.rotation`)."""


def pending_session(session: LoggedIn, pending: PendingKey) -> LoggedIn:
    """The session as a key rotation's pending identity: its vault key, unwrapped with
    the password's key (which a server can't make one for), and a key whose fingerprint
    is the pending one's."""
    if session.wrap_key is None:
        raise RotationError("a key rotation needs the password (log in again)")
    try:
        vault_key = crypto.unwrap_vault_key(pending.wrapped_vault_key, session.wrap_key)
        key = crypto.unlock(pending.locked_secret_key, vault_key)
    except crypto.CryptoError as exc:
        raise RotationError(
            "the pending key rotation does not open with this password: it was not made "
            "by this account's owner"
        ) from exc
    if key.fingerprint != pending.fingerprint.upper():
        raise RotationError("the pending key is not the one the server names")
    account = dataclasses.replace(
        session.account,
        fingerprint=key.fingerprint,
        encryption_key_id=pending.encryption_key_id,
        public_key=pending.public_key,
        locked_secret_key=pending.locked_secret_key,
        wrapped_vault_key=pending.wrapped_vault_key,
        recovery_wrapped_vault_key=pending.recovery_wrapped_vault_key,
    )
    return dataclasses.replace(session, account=account, vault_key=vault_key)


def _own_kdf(kdf: crypto.KdfParams, floor: crypto.KdfParams | None) -> crypto.KdfParams:
    """Parameters this client picks for a new password: never below its own floor."""
    floor = floor or kdf_floor()
    if not kdf.at_least(floor):
        raise KdfRefused(
            f"KDF parameters m={kdf.m} KiB, t={kdf.t} are below this client's floor "
            f"(m ≥ {floor.m}, t ≥ {floor.t})"
        )
    return kdf


def _trusted(
    api: HygieiaClient,
    email: str,
    kdf: Any,
    salt: bytes,
    *,
    floor: crypto.KdfParams | None,
    known: KnownKdf | None,
    accept_new_salt: bool = False,
) -> Remembered:
    return vet_kdf(
        kdf,
        salt,
        floor=floor or kdf_floor(),
        remembered=known.get(api.server, email) if known is not None else None,
        accept_new_salt=accept_new_salt,
    )


def _new_password_material(
    password: str, vault_key: bytes, salt: bytes, kdf: crypto.KdfParams
) -> dict[str, Any]:
    # The account keeps its salt for good (the server refuses another): a salt that
    # changed would show prelogin probers that the email has an account.
    keys = crypto.derive_keys(password, salt, kdf)
    return {
        "new_auth_key": to_b64(keys.auth_key),
        "new_salt": to_b64(salt),
        "new_kdf": kdf.to_dict(),
        "new_wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault_key, keys.wrap_key)),
    }


def _installed(material: dict[str, Any]) -> Remembered:
    """What a password change or recovery made by this client installs."""
    return Remembered(
        kdf=crypto.KdfParams.from_dict(material["new_kdf"]), salt=from_b64(material["new_salt"])
    )


def signup(
    api: HygieiaClient,
    email: str,
    password: str,
    *,
    kdf: crypto.KdfParams = crypto.DEFAULT_KDF,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> SignupResult:
    """Create an account whose password keys are derived with ``kdf``.

    The parameters are stored with the account and used at every login. Real accounts
    keep the default: it sets the cost of guessing the password offline, and unknown
    emails get it in the server's fake prelogin answers. Test fixtures pass cheaper ones
    (:data:`~hygieia.client.kdf_policy.KDF_FLOOR_ENV`); below the client's floor
    (:func:`kdf_floor`) ``kdf`` is refused.
    ``known`` remembers the parameters and salt for later logins.
    """
    check_new_password(password, user_inputs=[email])
    params = _own_kdf(kdf, floor)
    request = signup_request(email, password, params)
    account = api.signup(request.body)
    if known is not None:
        known.put(api.server, account.email, Remembered(kdf=params, salt=request.salt))
    return SignupResult(recovery_code=request.recovery_code, account=account)


@dataclass(frozen=True)
class SignupRequest:
    """A sign-up body with what the client keeps of it (the salt, the recovery code)."""

    body: dict[str, Any]
    salt: bytes
    recovery_code: str = field(repr=False)


def signup_request(email: str, password: str, kdf: crypto.KdfParams) -> SignupRequest:
    """Fresh salts, keys, identity and recovery code for a new account, as sent at
    sign-up; the password and ``kdf`` are not vetted here (:func:`signup` does that)."""
    salt, recovery_salt = crypto.new_salt(), crypto.new_salt()
    keys = crypto.derive_keys(password, salt, kdf)
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    code = crypto.new_recovery_code()
    rkeys = crypto.derive_recovery_keys(crypto.parse_recovery_code(code), recovery_salt)
    body = {
        "email": email,
        "kdf": kdf.to_dict(),
        "salt": to_b64(salt),
        "recovery_salt": to_b64(recovery_salt),
        "auth_key": to_b64(keys.auth_key),
        "public_key": identity.public_key,
        "locked_secret_key": identity.locked_secret_key,
        "wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault_key, keys.wrap_key)),
        "recovery_wrapped_vault_key": to_b64(crypto.wrap_vault_key(vault_key, rkeys.wrap_key)),
        "recovery_verifier": to_b64(rkeys.auth_key),
    }
    return SignupRequest(body=body, salt=salt, recovery_code=code)


def _use_session(
    api: HygieiaClient, grant: SessionGrant, vault_key: bytes, wrap_key: bytes | None = None
) -> LoggedIn:
    """Make ``api`` act with the new session's token from now on."""
    api.token = grant.token
    return LoggedIn(
        grant.token,
        grant.expires_at,
        grant.account,
        vault_key=vault_key,
        wrap_key=wrap_key,
        factors_removed=grant.factors_removed,
    )


def login(
    api: HygieiaClient,
    email: str,
    password: str,
    *,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
    accept_new_salt: bool = False,
    factor: FactorPrompt | None = None,
) -> LoggedIn:
    """Log in: derive ``auth_key`` with the account's parameters, once they pass
    :func:`~hygieia.client.kdf_policy.vet_kdf` (``accept_new_salt`` lets a salt other
    than the remembered one through: salts never change, but an account can be
    re-created). An account with a second factor asks ``factor`` for a code (protocol
    §10); without one, :class:`FactorNeeded` is raised."""
    pre = api.prelogin(email)
    trusted = _trusted(
        api,
        email,
        pre.kdf,
        pre.salt,
        floor=floor,
        known=known,
        accept_new_salt=accept_new_salt,
    )
    keys = crypto.derive_keys(password, trusted.salt, trusted.kdf)
    first = api.login(email, to_b64(keys.auth_key))
    if isinstance(first, FactorChallenge):
        if factor is None:
            raise FactorNeeded(first)
        method, code = factor(first)
        answer = api.login_factor(first.pending_token, method, code)
    else:
        answer = first
    vault_key = crypto.unwrap_vault_key(answer.account.wrapped_vault_key, keys.wrap_key)
    if known is not None:
        # Only now: the vault key unwrapped, so these are the parameters the account's
        # owner chose (a server can't wrap the vault key under a key it can't derive).
        known.put(api.server, answer.account.email, trusted)
    return _use_session(api, answer, vault_key, keys.wrap_key)


def unlock_vault(
    api: HygieiaClient,
    password: str,
    *,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> LoggedIn:
    """With a live token, re-derive the vault key from the password (no new session)."""
    account = api.me()
    trusted = _trusted(api, account.email, account.kdf, account.salt, floor=floor, known=known)
    keys = crypto.derive_keys(password, trusted.salt, trusted.kdf)
    vault_key = crypto.unwrap_vault_key(account.wrapped_vault_key, keys.wrap_key)
    return LoggedIn(
        token=api.token or "",
        expires_at="",
        account=account,
        vault_key=vault_key,
        wrap_key=keys.wrap_key,
    )


def password_proof(
    api: HygieiaClient,
    password: str,
    *,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> str:
    """``auth_key`` (base64) for a sensitive action of the logged-in account (removing a
    factor, new backup codes); a wrong password fails here, before anything is sent."""
    account = api.me()
    current = _trusted(api, account.email, account.kdf, account.salt, floor=floor, known=known)
    keys = crypto.derive_keys(password, current.salt, current.kdf)
    crypto.unwrap_vault_key(account.wrapped_vault_key, keys.wrap_key)
    return to_b64(keys.auth_key)


def change_password(
    api: HygieiaClient,
    old_password: str,
    new_password: str,
    *,
    kdf: crypto.KdfParams = crypto.DEFAULT_KDF,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> None:
    """Re-wrap the vault key under ``new_password``, derived with ``kdf`` (see
    :func:`signup`); the current parameters are vetted like a login's."""
    account = api.me()
    check_new_password(new_password, user_inputs=[account.email])
    params = _own_kdf(kdf, floor)
    current = _trusted(api, account.email, account.kdf, account.salt, floor=floor, known=known)
    old = crypto.derive_keys(old_password, current.salt, current.kdf)
    # A wrong password fails here already (AES-GCM), before anything is sent.
    vault_key = crypto.unwrap_vault_key(account.wrapped_vault_key, old.wrap_key)
    material = _new_password_material(new_password, vault_key, current.salt, params)
    api.change_password({"auth_key": to_b64(old.auth_key), **material})
    if known is not None:  # this client chose the new parameters: remember them
        known.put(api.server, account.email, _installed(material))


def recover(
    api: HygieiaClient,
    email: str,
    recovery_code: str,
    new_password: str,
    *,
    kdf: crypto.KdfParams = crypto.DEFAULT_KDF,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> LoggedIn:
    """Set ``new_password`` (derived with ``kdf``, see :func:`signup`) with the recovery
    code (160 random bits: its own salt needs no vetting beyond size)."""
    check_new_password(new_password, user_inputs=[email])
    params = _own_kdf(kdf, floor)
    code = crypto.parse_recovery_code(recovery_code)
    pre = api.prelogin(email)
    # The new password is derived with the account's salt (it never changes): the same
    # vetting as a login's, so a server can't slip in a salt of its choosing.
    current = _trusted(api, email, pre.kdf, pre.salt, floor=floor, known=known)
    rkeys = crypto.derive_recovery_keys(code, pre.recovery_salt)
    grant = api.recover(email, to_b64(rkeys.auth_key))
    vault_key = crypto.unwrap_vault_key(grant.recovery_wrapped_vault_key, rkeys.wrap_key)
    material = _new_password_material(new_password, vault_key, current.salt, params)
    new_keys = crypto.derive_keys(new_password, current.salt, params)
    if grant.pending_recovery_wrapped_vault_key is not None:
        # A key rotation is under way: its vault key must open with the new password
        # too, or it could not be finished (protocol "Key rotation").
        pending = crypto.unwrap_vault_key(grant.pending_recovery_wrapped_vault_key, rkeys.wrap_key)
        material["new_pending_wrapped_vault_key"] = to_b64(
            crypto.wrap_vault_key(pending, new_keys.wrap_key)
        )
    answer = api.recover_complete({"recovery_token": grant.recovery_token, **material})
    if known is not None:
        known.put(api.server, answer.account.email, _installed(material))
    return _use_session(api, answer, vault_key, new_keys.wrap_key)


def delete_account(
    api: HygieiaClient,
    password: str,
    *,
    factor: dict[str, Any] | None = None,
    floor: crypto.KdfParams | None = None,
    known: KnownKdf | None = None,
) -> None:
    """Delete the logged-in account on the server (records, grants, links, sessions:
    everything). The password is checked here first (the vault key must unwrap), so a
    typo fails before anything is sent; ``known`` then forgets the account."""
    email = api.me().email
    api.delete_account(password_proof(api, password, floor=floor, known=known), factor)
    api.token = None
    if known is not None:
        known.forget(api.server, email)


def export_key(session: LoggedIn, passphrase: str, *, account_password: str) -> str:
    """The secret key, armored and re-locked with ``passphrase`` for stock gpg: refused
    (:class:`~hygieia.client.passwords.WeakPassword`) if that is weak, or the account
    password or a near variant of it (:func:`check_export_passphrase`)."""
    check_export_passphrase(
        passphrase, account_password=account_password, user_inputs=[session.account.email]
    )
    return crypto.export_secret_key(
        session.account.locked_secret_key, session.vault_key, passphrase
    )
