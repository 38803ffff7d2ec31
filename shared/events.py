"""The CloudEvents-style envelope every topic carries."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.db import json_dumps


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=utcnow)
    sequence: int | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str | None = None
    actor: str | None = None  # who caused the change (token subject), for the audit trail
    # Set by shared.signing.sign_envelope when the event is staged (base64url Ed25519, no padding):
    # ``signer`` is the key id, ``signature`` covers this envelope, ``ledger_signature`` its ledger content.
    signer: str | None = None
    signature: str | None = None
    ledger_signature: str | None = None

    def to_bytes(self) -> bytes:
        return json_dumps(self.model_dump(mode="json", exclude_none=True)).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls.model_validate(json.loads(raw))
