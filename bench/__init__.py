"""Hygieia benchmarks: speed, memory and scale, each against a baseline in the same run.

Run with ``make bench`` (or ``python -m bench --help``). Not part of ``make test``.
"""
