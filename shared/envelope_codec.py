"""Decoding helpers for tools and tests that read topics directly."""
from __future__ import annotations

from shared.events import Envelope


def decode_all(records) -> list[Envelope]:
    return [Envelope.from_bytes(record.value) for record in records]
