"""Account flows done client-side: key derivation, identity, vault key wrapping.

Nothing secret (password, master key, wrap key, vault key, unlocked secret key) is ever
sent; only ``auth_key``, the recovery verifier and wrapped/locked material.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from hygieia import crypto
from hygieia.client.sdk import HygieiaClient


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@dataclass
class SignupResult:
    recovery_code: str
    account: dict[str, Any]


@dataclass
class LoggedIn:
    token: str
    expires_at: str
    account: dict[str, Any]
    vault_key: bytes

    def unlock(self) -> crypto.UnlockedKey:
        return crypto.unlock(self.account["locked_secret_key"], self.vault_key)


def _new_password_material(password: str, vault_key: bytes, salt: bytes) -> dict[str, Any]:
    # The account keeps its salt for good (the server refuses another): a salt that
    # changed would show prelogin probers that the email has an account.
    params = crypto.DEFAULT_KDF
    keys = crypto.derive_keys(password, salt, params)
    return {
        "new_auth_key": _b64(keys.auth_key),
        "new_salt": _b64(salt),
        "new_kdf": params.to_dict(),
        "new_wrapped_vault_key": _b64(crypto.wrap_vault_key(vault_key, keys.wrap_key)),
    }


def signup(api: HygieiaClient, email: str, password: str) -> SignupResult:
    salt, recovery_salt = crypto.new_salt(), crypto.new_salt()
    params = crypto.DEFAULT_KDF
    keys = crypto.derive_keys(password, salt, params)
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    code = crypto.new_recovery_code()
    rkeys = crypto.derive_recovery_keys(crypto.parse_recovery_code(code), recovery_salt)
    account = api.signup(
        {
            "email": email,
            "kdf": params.to_dict(),
            "salt": _b64(salt),
            "recovery_salt": _b64(recovery_salt),
            "auth_key": _b64(keys.auth_key),
            "public_key": identity.public_key,
            "locked_secret_key": identity.locked_secret_key,
            "wrapped_vault_key": _b64(crypto.wrap_vault_key(vault_key, keys.wrap_key)),
            "recovery_wrapped_vault_key": _b64(crypto.wrap_vault_key(vault_key, rkeys.wrap_key)),
            "recovery_verifier": _b64(rkeys.auth_key),
        }
    )
    return SignupResult(recovery_code=code, account=account)


def login(api: HygieiaClient, email: str, password: str) -> LoggedIn:
    pre = api.prelogin(email)
    params = crypto.KdfParams.from_dict(pre["kdf"])
    keys = crypto.derive_keys(password, _unb64(pre["salt"]), params)
    answer = api.login(email, _b64(keys.auth_key))
    account = answer["account"]
    vault_key = crypto.unwrap_vault_key(_unb64(account["wrapped_vault_key"]), keys.wrap_key)
    api.token = answer["token"]
    return LoggedIn(
        token=answer["token"], expires_at=answer["expires_at"], account=account, vault_key=vault_key
    )


def unlock_vault(api: HygieiaClient, password: str) -> LoggedIn:
    """With a live token, re-derive the vault key from the password (no new session)."""
    account = api.me()
    params = crypto.KdfParams.from_dict(account["kdf"])
    keys = crypto.derive_keys(password, _unb64(account["salt"]), params)
    vault_key = crypto.unwrap_vault_key(_unb64(account["wrapped_vault_key"]), keys.wrap_key)
    return LoggedIn(token=api.token or "", expires_at="", account=account, vault_key=vault_key)


def change_password(api: HygieiaClient, old_password: str, new_password: str) -> None:
    account = api.me()
    params = crypto.KdfParams.from_dict(account["kdf"])
    old = crypto.derive_keys(old_password, _unb64(account["salt"]), params)
    # A wrong password fails here already (AES-GCM), before anything is sent.
    vault_key = crypto.unwrap_vault_key(_unb64(account["wrapped_vault_key"]), old.wrap_key)
    body = {
        "auth_key": _b64(old.auth_key),
        **_new_password_material(new_password, vault_key, _unb64(account["salt"])),
    }
    api.change_password(body)


def recover(api: HygieiaClient, email: str, recovery_code: str, new_password: str) -> LoggedIn:
    code = crypto.parse_recovery_code(recovery_code)
    pre = api.prelogin(email)
    rkeys = crypto.derive_recovery_keys(code, _unb64(pre["recovery_salt"]))
    grant = api.recover(email, _b64(rkeys.auth_key))
    vault_key = crypto.unwrap_vault_key(_unb64(grant["recovery_wrapped_vault_key"]), rkeys.wrap_key)
    answer = api.recover_complete(
        {
            "recovery_token": grant["recovery_token"],
            **_new_password_material(new_password, vault_key, _unb64(pre["salt"])),
        }
    )
    api.token = answer["token"]
    return LoggedIn(
        token=answer["token"],
        expires_at=answer["expires_at"],
        account=answer["account"],
        vault_key=vault_key,
    )


def export_key(session: LoggedIn, passphrase: str) -> str:
    return crypto.export_secret_key(
        session.account["locked_secret_key"], session.vault_key, passphrase
    )
