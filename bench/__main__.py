"""``python -m bench``: run the benchmarks, print a table of ratios, write JSON.

Every figure is measured against its baseline in the same run, repeated, and reported
as the median with its spread (half the min-max range, relative). The figures go to
``bench/results/latest.json`` (git-ignored), one key per figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import Config, Figure

FIGURES = {
    "seal_vs_gpg": "crypto",
    "open_vs_gpg": "crypto",
    "login_ms": "crypto",
    "ingest_vs_store": "ingest",
    "server_rss_mb": "memory",
    "client_rss_mb": "memory",
    "list_p99_ms": "listing",
    "list_vs_bare": "listing",
    "offline_vs_online": "offline",
    "ingest_two_copies_vs_one": "copies",
    "scrub_mb_s": "copies",
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, 3 repeats, short loads")
    p.add_argument(
        "--only",
        action="append",
        choices=sorted(FIGURES),
        metavar="NAME",
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    p.add_argument("--repeats", type=int, help="repeats per figure (default 5, quick 3)")
    p.add_argument("--connections", type=int, help="concurrent connections for listing (10)")
    p.add_argument("--duration", type=float, help="seconds per load run for listing (10)")
    p.add_argument(
        "--db",
        action="append",
        choices=["sqlite", "postgresql"],
        help="database(s) for listing (default both)",
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("HYGIEIA_BENCH_TMP", tempfile.gettempdir())),
        help="where the big temporary files go",
    )
    return p.parse_args(argv)


def run_all(cfg: Config, only: set[str]) -> tuple[list[Figure], dict[str, str]]:
    from bench import (
        copies_bench,
        crypto_bench,
        ingest_bench,
        list_bench,
        memory_bench,
        offline_bench,
    )

    suites = [
        ("crypto", crypto_bench.run),
        ("ingest", ingest_bench.run),
        ("memory", memory_bench.run),
        ("listing", list_bench.run),
        ("offline", offline_bench.run),
        ("copies", copies_bench.run),
    ]
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    for name, fn in suites:
        wanted = {k for k, suite in FIGURES.items() if suite == name} & only
        if not wanted:
            continue
        print(f"· {name}: {', '.join(sorted(wanted))} …", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            figures.extend(fn(cfg, wanted))
        except Exception as exc:
            traceback.print_exc()
            for key in wanted:
                failures[key] = f"{type(exc).__name__}: {exc}"
        print(f"  {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return figures, failures


def fmt_value(f: Figure) -> str:
    if f.unit == "x":
        return f"{f.value:.2f}x"
    return f"{f.value:.0f} {f.unit}" if f.value >= 100 else f"{f.value:.1f} {f.unit}"


def fmt_baseline(f: Figure) -> str:
    d = f.detail
    if "hygieia_mb_s" in d:
        return f"{d['hygieia_mb_s']} vs {d['baseline_name']} {d['baseline_mb_s']} MB/s"
    return str(d.get("summary", ""))


def print_table(figures: list[Figure], failures: dict[str, str]) -> None:
    rows = [("figure", "value", "± spread", "target", "ok", "measured vs baseline")]
    for f in figures:
        ok = "—" if f.ok is None else ("yes" if f.ok else "NO")
        sp = "" if f.spread is None else f"±{f.spread * 100:.0f} %"
        rows.append((f.name, fmt_value(f), sp, f.target, ok, fmt_baseline(f)))
    for key, why in failures.items():
        rows.append((key, "error", "", "", "NO", why[:80]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def to_json(figures: list[Figure], failures: dict[str, str], cfg: Config) -> dict[str, Any]:
    """One key per figure: a number, or an object of numbers per variant (store, database)."""
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for f in figures:
        if f.variant is None:
            out[f.key] = round(f.value, 3)
        else:
            out.setdefault(f.key, {})[f.variant] = round(f.value, 3)
        details[f.name] = {
            "value": f.value,
            "unit": f.unit,
            "spread": f.spread,
            "target": f.target,
            "ok": f.ok,
            **f.detail,
        }
    for key, why in failures.items():
        out.setdefault(key, None)
        details[key] = {"error": why}
    out["meta"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": cfg.quick,
        "repeats": cfg.repeats,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    out["details"] = details
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cfg = Config.make(quick=args.quick, repeats=args.repeats, workdir=args.workdir)
    if args.connections:
        cfg.connections = args.connections
    if args.duration:
        cfg.load_seconds = args.duration
    if args.db:
        cfg.databases = tuple(args.db)
    only = set(args.only or FIGURES)
    figures, failures = run_all(cfg, only)
    print()
    print_table(figures, failures)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(to_json(figures, failures, cfg), indent=2) + "\n")
    print(f"\nwritten: {args.output}")
    missed = [f.name for f in figures if f.ok is False] + list(failures)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
