"""The KDF floor of the test suite: what test servers and test clients accept.

Production servers refuse passwords derived with less than ``crypto.DEFAULT_KDF``
(``HYGIEIA_KDF_MIN_*``) and clients refuse to derive with less
(``HYGIEIA_INSECURE_KDF_FLOOR``). Test fixtures make accounts with the cheapest
parameters ``KdfParams`` allows, to keep the suite fast, so every test server and
client is configured down to them here, in one place. Tests of the strict defaults
build their servers and clients with the defaults explicitly.
"""

from __future__ import annotations

from hygieia.client.kdf_policy import KDF_FLOOR_ENV
from tests.support.accounts import TEST_KDF

#: What test servers and clients accept: exactly the parameters fixtures sign up with.
TEST_KDF_FLOOR = TEST_KDF

#: ``HYGIEIA_*`` settings (without the prefix) for a test server.
SERVER_SETTINGS = {
    "KDF_MIN_MEMORY_KIB": str(TEST_KDF_FLOOR.m),
    "KDF_MIN_PASSES": str(TEST_KDF_FLOOR.t),
}

#: Environment for a test client process (the CLI, or this one for the SDK).
CLIENT_ENV = {KDF_FLOOR_ENV: f"m={TEST_KDF_FLOOR.m},t={TEST_KDF_FLOOR.t}"}
