"""Chinese names of programme codes (``program_names.yaml`` beside this file), for pages and exports.

A code without a name is shown as the code itself: an unnamed programme from a newer pack must
still appear, never vanish from a table.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

NAMES_FILE = Path(__file__).with_name("program_names.yaml")


@lru_cache(maxsize=1)
def program_names() -> dict[str, str]:
    with NAMES_FILE.open(encoding="utf-8") as handle:
        return {str(code): str(name) for code, name in (yaml.safe_load(handle) or {}).items()}


def program_name(code: str | None) -> str:
    """The programme's Chinese name, else its code (else an empty string for no code)."""
    if not code:
        return ""
    return program_names().get(code, code)
