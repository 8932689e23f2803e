"""Account flows done client-side: key derivation, identity, vault key wrapping.

Nothing secret (password, master key, wrap key, vault key, unlocked secret key) is ever
sent; only ``auth_key``, the recovery verifier and wrapped/locked material.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hygieia import crypto
from hygieia.client.sdk import HygieiaClient, NewAccount, SessionGrant
from hygieia.encoding import to_b64


@dataclass(frozen=True)
class SignupResult:
    recovery_code: str
    account: NewAccount


@dataclass(frozen=True)
class LoggedIn(SessionGrant):
    """A session and the vault key unwrapped with it (client memory only; never sent)."""

    vault_key: bytes = field(repr=False)

    def unlock(self) -> crypto.UnlockedKey:
        return crypto.unlock(self.account.locked_secret_key, self.vault_key)


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


def signup(
    api: HygieiaClient, email: str, password: str, *, kdf: crypto.KdfParams = crypto.DEFAULT_KDF
) -> SignupResult:
    """Create an account whose password keys are derived with ``kdf``.

    The parameters are stored with the account and used at every login. Real accounts
    keep the default: it sets the cost of guessing the password offline, and unknown
    emails get it in the server's fake prelogin answers. Test fixtures pass cheaper ones.
    """
    salt, recovery_salt = crypto.new_salt(), crypto.new_salt()
    keys = crypto.derive_keys(password, salt, kdf)
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    code = crypto.new_recovery_code()
    rkeys = crypto.derive_recovery_keys(crypto.parse_recovery_code(code), recovery_salt)
    account = api.signup(
        {
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
    )
    return SignupResult(recovery_code=code, account=account)


def _use_session(api: HygieiaClient, grant: SessionGrant, vault_key: bytes) -> LoggedIn:
    """Make ``api`` act with the new session's token from now on."""
    api.token = grant.token
    return LoggedIn(grant.token, grant.expires_at, grant.account, vault_key=vault_key)


def login(api: HygieiaClient, email: str, password: str) -> LoggedIn:
    pre = api.prelogin(email)
    params = crypto.KdfParams.from_dict(pre.kdf)
    keys = crypto.derive_keys(password, pre.salt, params)
    answer = api.login(email, to_b64(keys.auth_key))
    vault_key = crypto.unwrap_vault_key(answer.account.wrapped_vault_key, keys.wrap_key)
    return _use_session(api, answer, vault_key)


def unlock_vault(api: HygieiaClient, password: str) -> LoggedIn:
    """With a live token, re-derive the vault key from the password (no new session)."""
    account = api.me()
    params = crypto.KdfParams.from_dict(account.kdf)
    keys = crypto.derive_keys(password, account.salt, params)
    vault_key = crypto.unwrap_vault_key(account.wrapped_vault_key, keys.wrap_key)
    return LoggedIn(token=api.token or "", expires_at="", account=account, vault_key=vault_key)


def change_password(
    api: HygieiaClient,
    old_password: str,
    new_password: str,
    *,
    kdf: crypto.KdfParams = crypto.DEFAULT_KDF,
) -> None:
    """Re-wrap the vault key under ``new_password``, derived with ``kdf`` (see :func:`signup`)."""
    account = api.me()
    params = crypto.KdfParams.from_dict(account.kdf)
    old = crypto.derive_keys(old_password, account.salt, params)
    # A wrong password fails here already (AES-GCM), before anything is sent.
    vault_key = crypto.unwrap_vault_key(account.wrapped_vault_key, old.wrap_key)
    body = {
        "auth_key": to_b64(old.auth_key),
        **_new_password_material(new_password, vault_key, account.salt, kdf),
    }
    api.change_password(body)


def recover(
    api: HygieiaClient,
    email: str,
    recovery_code: str,
    new_password: str,
    *,
    kdf: crypto.KdfParams = crypto.DEFAULT_KDF,
) -> LoggedIn:
    """Set ``new_password`` (derived with ``kdf``, see :func:`signup`) with the recovery code."""
    code = crypto.parse_recovery_code(recovery_code)
    pre = api.prelogin(email)
    rkeys = crypto.derive_recovery_keys(code, pre.recovery_salt)
    grant = api.recover(email, to_b64(rkeys.auth_key))
    vault_key = crypto.unwrap_vault_key(grant.recovery_wrapped_vault_key, rkeys.wrap_key)
    answer = api.recover_complete(
        {
            "recovery_token": grant.recovery_token,
            **_new_password_material(new_password, vault_key, pre.salt, kdf),
        }
    )
    return _use_session(api, answer, vault_key)


def export_key(session: LoggedIn, passphrase: str) -> str:
    return crypto.export_secret_key(
        session.account.locked_secret_key, session.vault_key, passphrase
    )
