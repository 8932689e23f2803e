"""Stock gpg in a throwaway GNUPGHOME, for the tests and the benchmarks.

Every home made here is remembered so its gpg-agent can be stopped afterwards
(``tests/conftest.py`` does it after each test; the benchmarks call :meth:`Gpg.close`):
gpg starts an agent per home and leaves it running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["Gpg", "GpgFailed", "stop_gpg_agents"]

_HOMES: list[Path] = []


class GpgFailed(RuntimeError):
    """A gpg command that had to succeed did not (its stderr is the message)."""


class Gpg:
    """gpg with its own home: batch mode, no terminal, status lines on stderr.

    Keep the home's path short (under ``/tmp``): gpg-agent's socket path has a length
    limit. ``passphrase`` is given with loopback pinentry, never through a prompt.
    """

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        self.home = home
        _HOMES.append(home)

    def run(
        self, *args: str, input: bytes | None = None, passphrase: str | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--status-fd", "2"]
        cmd += ["--pinentry-mode", "loopback"]
        if passphrase is not None:
            cmd += ["--passphrase", passphrase]
        return subprocess.run([*cmd, *args], input=input, capture_output=True, timeout=600)

    def ok(self, *args: str, input: bytes | None = None, passphrase: str | None = None) -> bytes:
        """Run gpg and return its stdout; :class:`GpgFailed` if it exits non-zero."""
        result = self.run(*args, input=input, passphrase=passphrase)
        if result.returncode != 0:
            raise GpgFailed(f"gpg {' '.join(args[:1])}: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def fingerprint(self, who: str | None = None) -> str:
        """The fingerprint of the first key listed (for ``who``, if given)."""
        listing = self.ok("--with-colons", "--list-keys", *([who] if who else [])).decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def close(self, *, remove: bool = False) -> None:
        """Stop this home's gpg-agent (and delete the home with ``remove``)."""
        _stop_agent(self.home)
        if self.home in _HOMES:
            _HOMES.remove(self.home)
        if remove:
            shutil.rmtree(self.home, ignore_errors=True)


def _stop_agent(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        capture_output=True,
        timeout=30,
        check=False,
    )


def stop_gpg_agents() -> None:
    """Stop the agents gpg started for every home made by :class:`Gpg` and not closed."""
    while _HOMES:
        _stop_agent(_HOMES.pop())


def doc_script(marker: str, target: Path) -> Path:
    """The ``sh`` block after ``<!-- marker -->`` in docs/protocol.md, written verbatim to
    ``target`` and made executable (the docs' recipes are tested as printed)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    block = doc.split(f"<!-- {marker} -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    target.write_text(block)
    target.chmod(0o755)
    return target
