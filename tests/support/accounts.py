"""Test accounts made cheaply: the one KDF knob every fixture uses.

A real account derives its password keys with ``crypto.DEFAULT_KDF`` (Argon2id, 46 MiB,
8 passes: a quarter to half a second each time, on the client and in every CLI process
that unlocks the vault). Fixtures sign up with :data:`TEST_KDF` instead, the cheapest
parameters the server accepts; logins then use it too (they read it from prelogin).
A handful of tests keep the default end to end on purpose.
"""

from __future__ import annotations

from hygieia import crypto
from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient

#: The lowest parameters ``KdfParams`` allows (8 MiB, 1 pass). Test servers and clients
#: are configured down to it (tests/support/kdf.py: HYGIEIA_KDF_MIN_* on the server,
#: HYGIEIA_INSECURE_KDF_FLOOR on the client); production ones refuse it.
TEST_KDF = crypto.KdfParams(m=8192, t=1, p=1)


def new_account(api: HygieiaClient, email: str, password: str) -> acct.LoggedIn:
    """Sign up with :data:`TEST_KDF` and log in (``api`` keeps the session token)."""
    acct.signup(api, email, password, kdf=TEST_KDF)
    return acct.login(api, email, password)
