"""HTTP API and web page: expressions from uploads and from the browser camera (``facexpr serve``).

Needs the ``serve`` extra (FastAPI, uvicorn); imported lazily so the rest of the CLI works without it.
"""

from __future__ import annotations

from typing import Any

from facexpr.serving.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from facexpr.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'facexpr.serving' has no attribute {name!r}")
