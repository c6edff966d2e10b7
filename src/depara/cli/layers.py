"""CLI commands of this group (stub: filled by its issue)."""

from __future__ import annotations

from .app import app  # noqa: F401
