"""Chromium's virtual WebAuthn authenticator, through Playwright's CDP session.

``WebAuthn.enable`` makes the page's ``navigator.credentials`` talk to virtual
authenticators only (no OS dialog); each :class:`VirtualAuthenticator` is one device
with its own keys. Removing it (or adding a fresh one) is how a test shows an absent
or wrong device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class VirtualAuthenticator:
    cdp: Any
    id: str

    def credentials(self) -> list[dict[str, Any]]:
        got = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(got["credentials"])

    def set_user_verified(self, verified: bool) -> None:
        self.cdp.send(
            "WebAuthn.setUserVerified", {"authenticatorId": self.id, "isUserVerified": verified}
        )

    def remove(self) -> None:
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.id})


def webauthn_session(page: Any) -> Any:
    """A CDP session on ``page`` with the WebAuthn domain enabled."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    return cdp


def add_authenticator(cdp: Any, **overrides: Any) -> VirtualAuthenticator:
    """A platform authenticator (CTAP2, internal) that holds resident keys and verifies
    its user; ``overrides`` change any ``VirtualAuthenticatorOptions`` field."""
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    options.update(overrides)
    got = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return VirtualAuthenticator(cdp=cdp, id=got["authenticatorId"])
