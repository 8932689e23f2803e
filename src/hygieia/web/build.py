"""Build the browser bundle: ``npm ci`` the pinned packages, then esbuild ``src/`` into
``static/app/``.

Run as ``python -m hygieia.web.build`` (``make web``). Every asset the page loads comes
from our own server: the libraries are installed from the npm registry at the exact
versions in ``package-lock.json`` and bundled with our modules, never copied by hand
and never fetched from a CDN. A stamp file holding a digest of the lock file, the
sources and this script makes a second run with nothing changed a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
SRC_DIR = WEB_DIR / "src"
OUT_DIR = WEB_DIR / "static" / "app"
NODE_MODULES = WEB_DIR / "node_modules"
STAMP = OUT_DIR / ".build-stamp"
LOCK_STAMP = NODE_MODULES / ".hygieia-lock-sha256"
# main.js: the app; sw.js: its service worker (caches the app shell for offline use).
ENTRY_POINTS = ("main.js", "sw.js")
SHELL_MANIFEST = "shell.json"
# Browsers with WebCrypto HKDF/AES-GCM, ES2022, top-level await and CSP wasm-unsafe-eval.
TARGETS = "chrome103,firefox115,safari16"


class BuildError(RuntimeError):
    """The web bundle could not be built (npm or esbuild failed or is missing)."""


def _sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.relative_to(WEB_DIR.parent).as_posix().encode())
        h.update(b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


#: Files outside src/ that the bundle imports: the audit kinds' descriptions, one table
#: shared with the CLI (hygieia/client/audit_kinds.json).
SHARED_FILES = (WEB_DIR.parent / "client" / "audit_kinds.json",)


def _sources() -> list[Path]:
    files = sorted(p for p in SRC_DIR.rglob("*") if p.is_file())
    return [
        WEB_DIR / "package.json",
        WEB_DIR / "package-lock.json",
        Path(__file__),
        *SHARED_FILES,
        *files,
    ]


def source_digest() -> str:
    """Digest of everything the bundle is made from."""
    return _sha256_files(_sources())


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, cwd=WEB_DIR, check=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]} not found: install Node.js 18+ and npm") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{' '.join(cmd)} failed with exit code {exc.returncode}") from exc


def npm_ci(*, force: bool = False) -> bool:
    """Install exactly what ``package-lock.json`` pins; skip when already installed."""
    lock_digest = _sha256_files([WEB_DIR / "package-lock.json"])
    if not force and LOCK_STAMP.is_file() and LOCK_STAMP.read_text().strip() == lock_digest:
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Node.js 18+ and npm")
    # --ignore-scripts: no package runs code at install (esbuild's binary comes from its
    # platform package; its postinstall only double-checks it).
    _run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"])
    LOCK_STAMP.write_text(lock_digest + "\n")
    return True


def bundle(build_id: str = "dev") -> None:
    """Bundle ``src/*.js`` entry points into ``static/app/`` (replaced atomically).

    ``build_id`` (from the source digest) is compiled into the bundle as ``__BUILD__``:
    the service worker names its cache by it, so every new build is a new worker that
    caches the new shell and drops the old one.
    """
    esbuild = NODE_MODULES / ".bin" / "esbuild"
    tmp = OUT_DIR.with_name(f".app-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _run(
            [
                str(esbuild),
                *(str(SRC_DIR / e) for e in ENTRY_POINTS),
                "--bundle",
                "--format=esm",
                # Dynamic imports become chunks loaded on demand (the password-strength
                # estimator's word lists, ~1 MB, load only where a password is chosen).
                "--splitting",
                "--chunk-names=chunks/[name]-[hash]",
                "--platform=browser",
                f"--target={TARGETS}",
                "--minify",
                "--sourcemap=linked",
                "--legal-comments=linked",
                "--charset=utf8",
                "--log-level=warning",
                f"--define:__BUILD__={json.dumps(build_id)}",
                f"--outdir={tmp}",
            ]
        )
        _write_shell_manifest(tmp)
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        tmp.rename(OUT_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_shell_manifest(out: Path) -> None:
    """List the bundle's scripts (chunks included, not the worker itself) for the
    service worker to cache when it installs: the app then starts with no server."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.js") if p.name != "sw.js")
    (out / SHELL_MANIFEST).write_text(json.dumps(files, indent=1) + "\n")


def build(*, force: bool = False) -> bool:
    """Build if anything changed; return whether a build ran."""
    installed = npm_ci(force=force)
    digest = source_digest()
    if not (force or installed) and STAMP.is_file() and STAMP.read_text().strip() == digest:
        return False
    bundle(digest[:16])
    STAMP.write_text(digest + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hygieia.web.build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="reinstall and rebundle")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        built = build(force=args.force)
    except BuildError as exc:
        print(f"web build failed: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if built:
        size = sum(p.stat().st_size for p in OUT_DIR.rglob("*.js"))
        print(f"web: bundled static/app ({size // 1024} KiB JS) in {elapsed:.1f}s")
    else:
        print("web: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
