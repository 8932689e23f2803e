"""Server settings, read once from ``HYGIEIA_*`` environment variables and passed around.

Nothing reads the environment at import time: ``Settings()`` is built by the caller
(``hygieia serve``, a test) and handed to ``create_app``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hygieia import crypto
from hygieia.services.hashing import default_slots

DEFAULT_GATEWAY_ORIGINS = (
    "https://trustless-gateway.link",
    "https://ipfs.io",
    "https://dweb.link",
    "http://127.0.0.1:*",
    "http://localhost:*",
)
# An origin as a CSP source expression: no path, no wildcard host, no quotes or ';'.
_ORIGIN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}|\*))?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIEIA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: Host names (``Host`` header, port ignored) the server answers to, comma
    #: separated; ``*.example.org`` matches subdomains, ``*`` anything. Empty: the bind
    #: host, ``localhost``, ``127.0.0.1`` and ``[::1]``. Behind a reverse proxy, list the
    #: public name(s). Other hosts get 400 ``invalid_host`` (DNS rebinding, poisoned links).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    data_dir: Path = Path(".hygieia")
    #: SQLAlchemy URL; empty means SQLite at ``data_dir/hygieia.db``.
    database_url: str = ""
    #: Blob store: ``local`` (embedded, the default), ``kubo`` or ``memory``.
    store: Literal["local", "kubo", "memory"] = "local"
    #: Where records are pinned: a comma-separated list of Kubo RPC API base URLs, e.g.
    #: ``http://127.0.0.1:5001,https://user:pass@ipfs2.example.org:5001``, and ``local``
    #: for the embedded store as one of the copies. Credentials in a URL become its
    #: ``Authorization`` header: ``user:pass@`` Basic, a lone ``token@`` Bearer (Kubo's
    #: ``API.Authorizations``). Setting it selects ``kubo``. See docs/deploy.md.
    ipfs_api: str = ""
    #: ``Authorization`` header for the Kubo URLs above that carry no credentials.
    ipfs_api_auth: str = ""
    ipfs_timeout: float = Field(default=30.0, gt=0)
    #: Remote pinning services (IPFS Pinning Service API), comma separated, each
    #: ``https://TOKEN@api.example.org/psa`` (the token is sent as a Bearer token).
    #: They receive copies in the background, never count towards ``min_copies``.
    pinning_services: str = ""
    #: Stores that must hold a pinned copy of a record before its upload is
    #: acknowledged (201); the others get theirs from the replicator. Fewer reachable:
    #: 503 ``storage_unavailable`` and nothing written.
    min_copies: int = Field(default=1, ge=1, le=32)
    #: Seconds between the replicator's turns (copies made, retried with backoff,
    #: pinning service requests followed); 0: never.
    replicate_interval_seconds: int = Field(default=30, ge=0)
    #: Seconds between scrubs (every copy's blocks re-read and re-hashed, bad copies
    #: repaired), within ``scrub_budget_bytes`` a turn; 0: never.
    scrub_interval: int = Field(default=6 * 3600, ge=0)
    #: Bytes a periodic scrub reads per turn; the next turn goes on with the copies
    #: checked longest ago, so a large vault is covered over several turns. 0: no limit.
    scrub_budget_bytes: int = Field(default=1024**3, ge=0)

    #: Largest record (ciphertext bytes) accepted by an upload.
    max_record_bytes: int = Field(default=2 * 1024**3, gt=0)
    #: Largest JSON request body.
    max_json_bytes: int = Field(default=256 * 1024, gt=0)
    #: Ciphertext bytes one account may store in all; 0 means no quota.
    quota_bytes: int = Field(default=0, ge=0)
    #: Uploads running at once in this server process, and per account; past them an
    #: upload is refused at once (503 ``uploads_busy`` / 429 ``too_many_uploads``).
    max_uploads: int = Field(default=16, ge=1)
    max_uploads_per_account: int = Field(default=4, ge=1)

    #: Seconds a request body may go without a byte before the request is answered
    #: 408 and dropped (an upload then leaves nothing behind).
    body_idle_timeout: float = Field(default=30.0, gt=0)
    #: Seconds from a connection's opening (or a request's first byte) to the end of
    #: the request's headers; past it the connection is closed.
    header_timeout: float = Field(default=10.0, gt=0)
    #: Seconds an idle keep-alive connection is kept between requests.
    keep_alive_timeout: int = Field(default=5, ge=1)

    #: SMART Health Links (protocol §9). The encrypted files of one link, in all (JWE
    #: bytes): a link's files are made in the client's memory, so this is also what a
    #: client holds while it makes or opens one.
    max_link_bytes: int = Field(default=32 * 1024**2, gt=0, le=1024**3)
    #: Wrong passcodes a link accepts in its lifetime; then it is disabled.
    link_passcode_attempts: int = Field(default=10, ge=1, le=1000)
    #: The longest lifetime of a link.
    link_max_days: int = Field(default=365, ge=1, le=3650)
    #: Lifetime of the ``location`` URLs a manifest hands out (the spec allows 1 h).
    link_location_seconds: int = Field(default=600, ge=1, le=3600)
    #: Manifest and file requests per client address and hour before delays start.
    link_requests_per_hour: int = Field(default=300, gt=0)
    #: This server's public origin (``https://vault.example.org``), for the absolute
    #: ``location`` URLs a manifest hands out. Empty: the origin the request came to
    #: (right without a proxy; behind a TLS-terminating proxy set it, or the URLs say
    #: ``http://``).
    public_url: str = ""

    #: How long the browser waits for the user's passkey (WebAuthn ``timeout``, a hint
    #: to the browser); the challenge itself dies after 5 minutes regardless.
    passkey_timeout_seconds: int = Field(default=120, ge=1, le=300)

    session_ttl_seconds: int = Field(default=12 * 3600, gt=0, le=30 * 86_400)
    #: Failed logins allowed per account *and client address* before each further
    #: attempt from that pair must wait (recovery and password checks count apart).
    login_max_failures: int = Field(default=10, gt=0)
    #: Failed logins allowed per client address over all accounts (password spraying).
    login_address_max_failures: int = Field(default=100, gt=0)
    #: The first wait past a limit; it doubles with each further attempt.
    login_delay_seconds: int = Field(default=30, gt=0, le=86_400)
    #: A counter left alone this long starts over; also the longest wait.
    login_window_seconds: int = Field(default=900, gt=0, le=30 * 86_400)
    #: Sign-ups per client address and hour before delays start.
    signup_max_per_address: int = Field(default=20, gt=0)
    #: Public-key lookups per hour, per client address and per session.
    key_lookup_max: int = Field(default=60, gt=0)
    #: Server-side Argon2id hashes run at once (login, sign-up, recovery), and requests
    #: that may wait for one; past that the answer is 503 ``server_busy``.
    hash_concurrency: int = Field(default_factory=default_slots, ge=1, le=256)
    hash_queue: int = Field(default=16, ge=0, le=10_000)
    #: Reverse proxies whose ``X-Forwarded-For`` is believed (IPs or CIDRs, comma
    #: separated). The client address is the right-most one not in this list.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The weakest Argon2id parameters accepted for a password at sign-up, password
    #: change and recovery: memory (KiB) and passes. The default is what the clients
    #: use (crypto.DEFAULT_KDF); lower it only for test suites and benchmarks.
    kdf_min_memory_kib: int = Field(default=crypto.DEFAULT_KDF.m, ge=8192, le=1048576)
    kdf_min_passes: int = Field(default=crypto.DEFAULT_KDF.t, ge=1, le=10)
    #: Browser auto-lock after this many seconds without activity.
    idle_lock_seconds: int = Field(default=900, gt=0, le=86_400)

    #: Reconcile orphan pins on start-up.
    reconcile_on_start: bool = True
    #: Orphan pins younger than this are left alone (an upload on another replica may
    #: be between its pin and its commit). Pin-to-commit takes milliseconds.
    reconcile_grace_seconds: int = Field(default=300, ge=0)
    #: Reconcile (and collect garbage) every this many seconds while serving; 0: never.
    #: With several processes on one database, one at a time does it (a lease).
    reconcile_interval_seconds: int = Field(default=3600, ge=0)
    log_level: str = "info"
    #: Worker threads for blocking work (DB, storage). Each running upload holds one;
    #: fewer threads contend less for the GIL under load.
    worker_threads: int = Field(default=40, ge=2, le=1000)
    #: Threads that may serve the listing (the hot read path) at once. Its work is
    #: short and mostly holds the GIL, so more threads only hand the GIL back and forth
    #: (SQLite's driver drops it for every column of every row): under load, two serve
    #: ~1.8x the requests of forty, with a third of the p99 (bench list_vs_bare).
    read_threads: int = Field(default=2, ge=1, le=1000)
    #: Origins of the IPFS gateways the web app may fetch records from while the API
    #: is unreachable (its offline mode): they go into the page's CSP ``connect-src``,
    #: space or comma separated, ``scheme://host[:port]`` with ``:*`` for any port.
    #: Blocks are verified against their CIDs in the page; this only limits where the
    #: page may connect. Loopback covers a node on the user's own machine.
    gateway_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_GATEWAY_ORIGINS)
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, v: object) -> list[str]:
        items = v.replace(",", " ").split() if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            raise ValueError("a comma-separated list of IP addresses or networks")
        try:
            return [str(ipaddress.ip_network(str(i).strip(), strict=False)) for i in items]
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {exc}") from exc

    @field_validator("gateway_origins", mode="before")
    @classmethod
    def _origins(cls, v: object) -> list[str]:
        items = v.replace(",", " ").split() if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            raise ValueError("a space- or comma-separated list of origins")
        origins = [str(i).strip().rstrip("/") for i in items if str(i).strip()]
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r}: an origin is http(s)://host[:port|:*]")
        return origins

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, v: object) -> str:
        text = str(v or "").strip().rstrip("/")
        if text and not _ORIGIN.fullmatch(text):
            raise ValueError("public_url is an origin: http(s)://host[:port]")
        return text

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, v: object) -> list[str]:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            raise ValueError("a comma-separated list of host names")
        hosts = [str(i).strip().lower() for i in items if str(i).strip()]
        for host in hosts:
            if host != "*" and ("*" in host[1:] or (host.startswith("*") and host[:2] != "*.")):
                raise ValueError(f"{host!r}: a wildcard is '*' or a leading '*.'")
        return hosts

    def resolved_allowed_hosts(self) -> list[str]:
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        bind = self.host.lower()
        if ":" in bind and not bind.startswith("["):
            bind = f"[{bind}]"  # an IPv6 literal as it appears in a Host header
        return list(dict.fromkeys([bind, "localhost", "127.0.0.1", "[::1]"]))

    def kdf_floor(self) -> crypto.KdfParams:
        return crypto.KdfParams(m=self.kdf_min_memory_kib, t=self.kdf_min_passes)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hygieia.db').resolve()}"

    def resolved_store(self) -> str:
        if self.ipfs_api and self.store == "local":
            return "kubo"
        return self.store
