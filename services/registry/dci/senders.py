"""Registered DCI senders: which systems may call ``/registry/...``, as which client, called back where.

The spec leaves onboarding to the deployment ("the default URI is configured on the gateway as part of
sender/receiver onboarding"); here an administrator registers each sender: its ``sender_id``, the token
client that may speak for it (a partner client of benefits' registry with scope ``dci``, or a staff
subject), the base URI of its callbacks (every callback and notification goes under it, so no request can
point the registry at an address of its own choosing) and, optionally, its Ed25519 public key (then every
request must be signed).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.dci.envelope import EnvelopeError, now_utc
from services.registry.tables import dci_senders
from shared.auth import Principal
from shared.events import as_aware
from shared.problems import Problem

SENDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,98}$")


def parse_public_key(text: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _check_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ValueError("an http(s) URI with a host and no query, fragment or credentials")
    return value.rstrip("/")


class SenderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender_id: str = Field(description="The sender_id its messages carry in their header (1–99 characters).")
    client_id: str = Field(min_length=1, max_length=128,
                           description="The token client (partner client id) or subject that may speak for it.")
    name: str = Field(min_length=1, max_length=200, description="Who it is, e.g. 区民政局社会救助系统.")
    callback_uri: str = Field(max_length=500, description="Base URI of its DCI endpoints; every callback and "
                                                          "notification goes under it.")
    public_key: str | None = Field(None, description="Ed25519 public key (PEM): set, every request must be signed.")

    @field_validator("sender_id")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not SENDER_ID.match(value):
            raise ValueError("1–99 letters, digits or . _ : @ / -, starting with a letter or digit")
        return value

    @field_validator("callback_uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return _check_uri(value)

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            parse_public_key(value)
        return value


class SenderChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200, description="New name.")
    callback_uri: str | None = Field(None, max_length=500, description="New callback base URI.")
    public_key: str | None = Field(None, description="New Ed25519 public key (PEM); an empty string removes it.")
    status: str | None = Field(None, pattern="^(active|disabled)$", description="active or disabled.")

    @field_validator("name", "callback_uri", "status", mode="before")
    @classmethod
    def _not_null(cls, value):
        if value is None:  # only public_key may be cleared; the others are required columns
            raise ValueError("may be changed but not set to null")
        return value

    @field_validator("callback_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else _check_uri(value)

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value:
            parse_public_key(value)
        return value


def present(row) -> dict:
    return {"sender_id": row.sender_id, "client_id": row.client_id, "name": row.name,
            "callback_uri": row.callback_uri, "signs": row.public_key is not None, "public_key": row.public_key,
            "status": row.status, "created_at": as_aware(row.created_at), "created_by": row.created_by,
            "updated_at": as_aware(row.updated_at)}


async def create_sender(session: AsyncSession, body: SenderCreate, principal: Principal) -> dict:
    sender_id = body.sender_id
    if await session.scalar(select(dci_senders.c.sender_id).where(dci_senders.c.sender_id == sender_id)):
        raise Problem(409, "Sender already registered", f"Sender {sender_id} is already registered; change it "
                      "with PATCH.", type_="https://jingzhun.dev/problems/conflict")
    await session.execute(insert(dci_senders).values(**body.model_dump(), status="active", created_at=now_utc(),
                                                     created_by=principal.subject))
    await session.commit()
    return await get_sender(session, body.sender_id)


async def get_sender(session: AsyncSession, sender_id: str) -> dict:
    row = (await session.execute(select(dci_senders).where(dci_senders.c.sender_id == sender_id))).first()
    if row is None:
        raise Problem(404, "No such sender", f"No DCI sender {sender_id} is registered.",
                      type_="https://jingzhun.dev/problems/not-found")
    return present(row)


async def list_senders(session: AsyncSession) -> list[dict]:
    return [present(row) for row in (await session.execute(select(dci_senders).order_by(dci_senders.c.sender_id))).all()]


async def change_sender(session: AsyncSession, sender_id: str, body: SenderChange) -> dict:
    await get_sender(session, sender_id)
    values = body.model_dump(exclude_unset=True)
    if "public_key" in values and not values["public_key"]:
        values["public_key"] = None
    if values:
        await session.execute(update(dci_senders).where(dci_senders.c.sender_id == sender_id)
                              .values(**values, updated_at=now_utc()))
        await session.commit()
    return await get_sender(session, sender_id)


async def sender_for(session: AsyncSession, sender_id: str, principal: Principal):
    """The active sender a message names, if this caller may speak for it (EnvelopeError otherwise)."""
    row = (await session.execute(select(dci_senders).where(dci_senders.c.sender_id == sender_id))).first()
    if row is None or row.status != "active":
        raise EnvelopeError("err.sender_id.invalid", f"header.sender_id {sender_id!r} is not a registered, active "
                            "sender of this registry.", f"header.sender_id {sender_id!r} 不是本登记系统已登记且启用的发送方。")
    if not principal.is_admin and row.client_id not in (principal.client_id, principal.subject):
        raise EnvelopeError("err.request.forbidden", f"This token may not send as {sender_id!r}.",
                            f"此令牌不得以 {sender_id!r} 的身份发送。", http_status=403)
    return row
