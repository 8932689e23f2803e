"""Hygieia: a self-hostable, end-to-end encrypted vault for personal medical records."""

__version__ = "0.1.0"
