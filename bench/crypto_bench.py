"""Client crypto against stock gpg: ``seal_vs_gpg``, ``open_vs_gpg``; and ``login_ms``.

Both sides use the same key (the Hygieia identity exported for gpg, as ``hygieia key
export`` does), the same file (random bytes), AES-256, SHA-256, no compression, and
write their output to a file in the same directory. Hygieia's side is the real client
code: ``seal_file`` (segments, signatures, the record's CID, the plaintext digest) and
``records.get`` (CID check, decryption, signature and order checks, digest, fsync)
with the HTTP transport replaced by one that streams the sealed file from disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.support.gpg import Gpg

from bench.common import (
    Config,
    Figure,
    Runs,
    bounded,
    median,
    paired_ratios,
    random_file,
    throughput_ratio,
)
from hygieia import crypto
from hygieia.client import records
from hygieia.client.account import LoggedIn
from hygieia.client.sdk import Account, HygieiaClient
from hygieia.encoding import to_b64

EMAIL = "bench@example.org"
EXPORT_PASSPHRASE = "bench export passphrase"
RECORD_ID = "00000000-0000-4000-8000-000000000001"


def _gpg_with_key(home: Path, armored_secret: str) -> tuple[Gpg, str]:
    """gpg holding the Hygieia key (exported as for gpg users), and its fingerprint."""
    gpg = Gpg(home)
    gpg.ok("--import", input=armored_secret.encode(), passphrase=EXPORT_PASSPHRASE)
    return gpg, gpg.fingerprint()


def _gpg_encrypt_sign(gpg: Gpg, fingerprint: str, src: Path, dst: Path) -> None:
    gpg.ok(
        "--yes",
        "--trust-model",
        "always",
        "--local-user",
        fingerprint,
        "--recipient",
        fingerprint,
        "--cipher-algo",
        "AES256",
        "--digest-algo",
        "SHA256",
        "--compress-algo",
        "none",
        "--output",
        str(dst),
        "--encrypt",
        "--sign",
        str(src),
        passphrase=EXPORT_PASSPHRASE,
    )


def _gpg_decrypt_verify(gpg: Gpg, src: Path, dst: Path) -> None:
    result = gpg.run("--yes", "--output", str(dst), "--decrypt", str(src))
    if result.returncode != 0 or b"[GNUPG:] GOODSIG" not in result.stderr:
        raise RuntimeError(f"gpg did not decrypt and verify: {result.stderr.decode()[-500:]}")


class _FileStream(httpx.SyncByteStream):
    def __init__(self, path: Path) -> None:
        self._path = path

    def __iter__(self) -> Iterator[bytes]:
        with open(self._path, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk


def _offline_client(item: dict[str, object], sealed: Path) -> HygieiaClient:
    """An SDK client whose transport serves one record from disk (no server, no network)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/content"):
            headers = {"content-length": str(sealed.stat().st_size)}
            return httpx.Response(200, headers=headers, stream=_FileStream(sealed))
        return httpx.Response(200, json=item)

    return HygieiaClient("https://bench.invalid", token="t", transport=httpx.MockTransport(handler))


def run(cfg: Config, only: set[str]) -> list[Figure]:
    figures: list[Figure] = []
    if only & {"login_ms"}:
        figures.append(login_ms(cfg))
    if only & {"seal_vs_gpg", "open_vs_gpg"}:
        figures.extend(seal_open_vs_gpg(cfg, only))
    return figures


def login_ms(cfg: Config) -> Figure:
    """Client-side key derivation with the parameters new accounts get (DEFAULT_KDF)."""
    salt = crypto.new_salt()
    crypto.derive_keys("warm-up", salt)
    times = []
    for _ in range(max(cfg.repeats, 3)):
        start = time.perf_counter()
        crypto.derive_keys("correct horse battery staple", salt)
        times.append((time.perf_counter() - start) * 1000)
    # Neighbouring parameters, so a miss shows what would meet the target. More time
    # (t), not more memory (m): the KDF's memory adds straight to the CLI's peak RSS.
    candidates = {}
    base = crypto.DEFAULT_KDF
    for t in sorted({max(1, base.t - 2), base.t + 2}):
        params = crypto.KdfParams(m=base.m, t=t, p=base.p)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            crypto.derive_keys("correct horse battery staple", salt, params)
            runs.append((time.perf_counter() - start) * 1000)
        candidates[f"m={params.m},t={t},p={params.p}"] = round(median(runs), 1)
    return bounded(
        "login_ms",
        times,
        unit="ms",
        low=250,
        high=1000,
        target_unit="ms",
        detail={
            "summary": "; ".join(f"{k}: {v:.0f} ms" for k, v in candidates.items()),
            "kdf": crypto.DEFAULT_KDF.to_dict(),
            "runs_ms": [round(t, 1) for t in times],
            "candidates_ms": candidates,
        },
    )


def seal_open_vs_gpg(cfg: Config, only: set[str]) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="hyg-bench-crypto-", dir=cfg.workdir))
    # gpg-agent's socket path must stay short: a home directly under /tmp.
    gpg_home = Path(tempfile.mkdtemp(prefix="hyg-gpg-", dir="/tmp")) / "h"
    gpg: Gpg | None = None
    try:
        vault_key = crypto.new_vault_key()
        identity = crypto.generate_identity(EMAIL, vault_key)
        signer = crypto.unlock(identity.locked_secret_key, vault_key)
        tool, fingerprint = _gpg_with_key(
            gpg_home,
            crypto.export_secret_key(identity.locked_secret_key, vault_key, EXPORT_PASSPHRASE),
        )
        gpg = tool
        plain = random_file(work / "record.bin", cfg.crypto_bytes)
        size = cfg.crypto_bytes
        session_key = crypto.new_session_key()
        sealed_path = work / "record.sealed"
        last: dict[str, records.SealedFile | str] = {}

        def seal(_: int) -> float:
            start = time.perf_counter()
            sealed, digest = records.seal_file(
                plain, session_key=session_key, signer=signer, workdir=work
            )
            elapsed = time.perf_counter() - start
            os.replace(sealed.path, sealed_path)
            sealed.path = sealed_path
            last.update(sealed=sealed, digest=digest)
            return elapsed

        def gpg_seal(_: int) -> float:
            start = time.perf_counter()
            _gpg_encrypt_sign(tool, fingerprint, plain, work / "record.gpg")
            return time.perf_counter() - start

        figures = []
        seal(-1)  # warm-up, not counted (imports, page cache, gpg-agent start)
        gpg_seal(-1)
        runs = paired_ratios(seal, gpg_seal, cfg.repeats)
        if "seal_vs_gpg" in only:
            figures.append(_vs_gpg("seal_vs_gpg", runs, size))

        if "open_vs_gpg" in only:
            sealed_file = last["sealed"]
            assert isinstance(sealed_file, records.SealedFile)
            cid = sealed_file.cid
            metadata = records.build_metadata(
                plain,
                sealed=sealed_file,
                sha256=str(last["digest"]),
                fields=records.RecordFields(),
            )
            item = {
                "id": RECORD_ID,
                "cid": cid,
                "size": sealed_file.size,
                "segments": sealed_file.segments,
                "created_at": "2026-01-01T00:00:00Z",
                "pkesk": to_b64(crypto.make_pkesk(session_key, signer.public_key)),
                "sealed_metadata": to_b64(
                    crypto.seal_record_metadata(
                        metadata, record_id=RECORD_ID, recipients=[signer.public_key], signer=signer
                    )
                ),
                "envelope": to_b64(b"unused"),
            }
            # Only the locked key is read from the account on this path.
            account = Account(
                id=RECORD_ID,
                email=EMAIL,
                fingerprint="",
                encryption_key_id="",
                public_key=identity.public_key,
                locked_secret_key=identity.locked_secret_key,
                wrapped_vault_key=b"",
                kdf={},
                salt=b"",
                recovery_salt=b"",
                recovery_wrapped_vault_key=b"",
                created_at="",
            )
            session = LoggedIn(token="t", expires_at="", account=account, vault_key=vault_key)
            api = _offline_client(item, sealed_path)
            out = work / "record.out"

            def open_(_: int) -> float:
                start = time.perf_counter()
                records.get(api, session, RECORD_ID, out)
                return time.perf_counter() - start

            def gpg_open(_: int) -> float:
                start = time.perf_counter()
                _gpg_decrypt_verify(tool, work / "record.gpg", work / "record.gpg.out")
                return time.perf_counter() - start

            open_(-1)
            gpg_open(-1)
            runs = paired_ratios(open_, gpg_open, cfg.repeats)
            if out.stat().st_size != size or (work / "record.gpg.out").stat().st_size != size:
                raise RuntimeError("decrypted sizes differ from the original")
            figures.append(_vs_gpg("open_vs_gpg", runs, size))
        return figures
    finally:
        if gpg is not None:
            gpg.close()
        shutil.rmtree(gpg_home.parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _vs_gpg(key: str, runs: Runs, size: int) -> Figure:
    return throughput_ratio(key, runs, size=size, low=0.5, names=("hygieia", "gpg"))
