"""``POST /oauth2/client/token``: the DCI token API (client credentials) over the partner client registry."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
