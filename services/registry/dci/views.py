"""The DCI Social Registry API's paths, exactly as the specification names them (docs/dci.md)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
