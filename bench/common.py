"""Shared pieces: figures, repeated timing, medians and spreads, random files, RSS."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1000 * 1000
MIB = 1024 * 1024


@dataclass
class Config:
    """What a run measures with: sizes, repeats, load. ``--quick`` shrinks all of it."""

    quick: bool = False
    repeats: int = 5
    crypto_bytes: int = 100 * MB
    ingest_bytes: int = 100 * MB
    memory_bytes: int = 1000 * MB
    list_records: int = 10_000
    list_page: int = 50
    connections: int = 10
    load_seconds: float = 10.0
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    workdir: Path = Path("/tmp")

    @classmethod
    def make(cls, *, quick: bool, repeats: int | None, workdir: Path) -> Config:
        if quick:
            cfg = cls(
                quick=True,
                repeats=3,
                crypto_bytes=20 * MB,
                ingest_bytes=20 * MB,
                memory_bytes=200 * MB,
                load_seconds=3.0,
                workdir=workdir,
            )
        else:
            cfg = cls(workdir=workdir)
        if repeats is not None:
            cfg.repeats = max(1, repeats)
        return cfg


@dataclass
class Figure:
    """One reported number, its target and how it was obtained.

    ``value`` is the median over repeats; ``spread`` is half the min-max range of the
    repeats relative to the median (so ``0.08`` prints as ``±8 %``).
    """

    key: str
    variant: str | None
    value: float
    unit: str
    target: str
    ok: bool | None
    spread: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.key}[{self.variant}]" if self.variant else self.key


def bounded(
    key: str,
    measured: Sequence[float] | float,
    *,
    unit: str,
    low: float | None = None,
    high: float | None = None,
    target_unit: str = "",
    variant: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Figure:
    """A figure and its verdict: the median of ``measured`` within ``[low, high]``.

    ``measured`` is the value of each repeat (with a spread), or one number measured
    once (none). The target reads ``≥ low``, ``≤ high`` or ``low-high``, followed by
    ``target_unit``.
    """
    runs = [measured] if isinstance(measured, int | float) else list(measured)
    value = median(runs)
    if low is not None and high is not None:
        target = f"{low:g}-{high:g}"
    elif low is not None:
        target = f"≥ {low:g}"
    elif high is not None:
        target = f"≤ {high:g}"
    else:
        raise ValueError("a figure needs a bound")
    return Figure(
        key=key,
        variant=variant,
        value=value,
        unit=unit,
        target=f"{target} {target_unit}".rstrip(),
        ok=(low is None or value >= low) and (high is None or value <= high),
        spread=None if isinstance(measured, int | float) else spread(runs),
        detail=detail or {},
    )


Runs = tuple[list[float], list[float], list[float]]


def throughput_ratio(
    key: str,
    runs: Runs,
    *,
    size: int,
    low: float,
    names: tuple[str, str],
    variant: str | None = None,
) -> Figure:
    """Hygieia's throughput over a baseline's on ``size`` bytes, from :func:`paired_ratios`.

    ``names`` (ours, the baseline's) name the per-run seconds in the detail
    (``<name>_s``); the baseline's is also its ``baseline_name``.
    """
    ours, base, ratios = runs
    ours_name, baseline_name = names
    return bounded(
        key,
        ratios,
        unit="x",
        low=low,
        variant=variant,
        detail={
            "bytes": size,
            "baseline_name": baseline_name,
            "hygieia_mb_s": round(mb_per_s(size, median(ours)), 1),
            "baseline_mb_s": round(mb_per_s(size, median(base)), 1),
            f"{ours_name}_s": [round(t, 3) for t in ours],
            f"{baseline_name}_s": [round(t, 3) for t in base],
        },
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """Half the min-max range relative to the median (0 for one value)."""
    if len(values) < 2:
        return 0.0
    mid = median(values)
    return (max(values) - min(values)) / 2 / mid if mid else 0.0


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ratios(
    ours: Callable[[int], float], baseline: Callable[[int], float], repeats: int
) -> Runs:
    """Run ``ours(i)`` and ``baseline(i)`` (each returns seconds) ``repeats`` times.

    The order alternates each round so a drift in machine load hits both sides alike.
    Returns (ours seconds, baseline seconds, throughput ratios baseline/ours per round).
    """
    ours_s: list[float] = []
    base_s: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            a = ours(i)
            b = baseline(i)
        else:
            b = baseline(i)
            a = ours(i)
        ours_s.append(a)
        base_s.append(b)
    ratios = [b / a for a, b in zip(ours_s, base_s, strict=True)]
    return ours_s, base_s, ratios


def random_file(path: Path, size: int) -> Path:
    """``size`` random bytes (incompressible, like the PDFs and images people store)."""
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            n = min(remaining, 4 * MIB)
            out.write(os.urandom(n))
            remaining -= n
    return path


def proc_status_kb(pid: int, field_name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM`` = peak RSS, ``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def mb_per_s(size: int, seconds: float) -> float:
    return size / MB / seconds if seconds else float("inf")
