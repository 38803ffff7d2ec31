"""The worker that answers asynchronous DCI requests and delivers notifications, never inside a request.

Each pending row of ``dci_deliveries`` is claimed (its next attempt moved past a lease, so a second worker
or replica leaves it alone), answered if it is a callback whose answer is not computed yet (``service.answer``,
committed with the access events), then signed and POSTed to the sender's URI. A 2xx answer delivers it;
anything else (an error status, a timeout, a refused connection) counts an attempt and schedules the next one
after ``backoff × 2^(attempts-1)`` seconds (at most ``backoff_max``); after the last attempt the row is
``dead``: it stays listed for an administrator (``GET /v1/admin/dci/deliveries?status=dead``), who can redrive
it. A process killed at any point loses nothing: the row is still pending and its lease runs out; the receiver
may get a delivery twice and recognises it by the header's ``message_id``, which stays the same on every
attempt.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.dci import service
from services.registry.dci.envelope import now_utc, sign, under
from services.registry.tables import dci_deliveries, dci_senders, dci_transactions
from shared.config import RegistrySettings
from shared.personal_data import write_private_file
from shared.signing import load_private_key, new_private_key_pem, raw_public_bytes

log = logging.getLogger("registry.dci.worker")

BATCH = 20
FINAL = "not sent: "  # a refusal no retry can change


@dataclass(frozen=True)
class DciSigner:
    """The registry's DCI message key (Ed25519): signs every answer, callback and notification."""
    private_key: Ed25519PrivateKey
    key_id: str  # "<receiver_id>|<key id>|ed25519", as the signature's keyId

    def sign(self, header: dict, message: dict | None) -> str:
        return sign(self.private_key, self.key_id, header, message)

    def jwks(self) -> dict:
        raw = raw_public_bytes(self.private_key.public_key())
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.key_id,
                          "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}]}


def dci_signer(settings: RegistrySettings) -> DciSigner | None:
    """``JZ_REGISTRY_DCI_SIGNING_KEY_FILE``, or (embedded only) ``var/keys/registry-dci.pem`` made on first use.

    Production without the setting: None, logged once; the registry runs and its DCI paths answer 503 naming the
    setting (the rest of the registry does not depend on it)."""
    path = settings.dci_signing_key_file
    if path is None:
        if settings.profile == "production":
            log.error("DCI paths off: JZ_REGISTRY_DCI_SIGNING_KEY_FILE is not set (the Ed25519 key, PEM PKCS#8, that "
                      "signs the registry's DCI answers)")
            return None
        path = Path(settings.var_dir) / "keys" / "registry-dci.pem"
        if not path.exists():
            write_private_file(path, new_private_key_pem())
    key = load_private_key(Path(path))
    fingerprint = hashlib.sha256(raw_public_bytes(key.public_key())).hexdigest()[:16]
    return DciSigner(key, f"{settings.dci_receiver_id}|{fingerprint}|ed25519")


class DciWorker:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: RegistrySettings, signer: DciSigner,
                 *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.sessionmaker, self.settings, self.signer = sessionmaker, settings, signer
        self.client = httpx.AsyncClient(transport=transport, timeout=settings.dci_callback_timeout_s,
                                        follow_redirects=False)  # a redirect could lead outside the sender's URI
        self.wake = asyncio.Event()
        self.lease = timedelta(seconds=settings.dci_callback_timeout_s + 30)

    async def close(self) -> None:
        await self.client.aclose()

    async def run(self) -> None:
        while True:
            try:
                done = await self.deliver_due()
            except Exception:  # noqa: BLE001 — a database outage must not end the worker
                log.exception("DCI worker pass failed; retrying")
                done = 0
            if done == 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.settings.dci_worker_poll_s)
                except asyncio.TimeoutError:
                    pass

    async def deliver_due(self, *, now: datetime | None = None) -> int:
        """One pass: claim, answer and send up to ``BATCH`` due deliveries. Returns how many were tried."""
        now = now or now_utc()
        claimed = await self._claim(now)
        for row_id in claimed:
            await self._deliver(row_id)
        return len(claimed)

    async def _claim(self, now: datetime) -> list[int]:
        async with self.sessionmaker() as session:
            due = (await session.execute(
                select(dci_deliveries.c.id, dci_deliveries.c.next_attempt_at)
                .where(dci_deliveries.c.status == "pending", dci_deliveries.c.next_attempt_at <= now)
                .order_by(dci_deliveries.c.id).limit(BATCH))).all()
            claimed = []
            for row in due:
                result = await session.execute(update(dci_deliveries).where(
                    dci_deliveries.c.id == row.id, dci_deliveries.c.status == "pending",
                    dci_deliveries.c.next_attempt_at == row.next_attempt_at).values(next_attempt_at=now + self.lease))
                if result.rowcount == 1:
                    claimed.append(row.id)
            await session.commit()
        return claimed

    async def _deliver(self, row_id: int) -> None:
        async with self.sessionmaker() as session:
            row = (await session.execute(select(dci_deliveries).where(dci_deliveries.c.id == row_id))).first()
            header, message = row.header, row.message
            if header is None:  # a callback whose answer is computed now, once
                txn = (await session.execute(select(dci_transactions).where(
                    dci_transactions.c.correlation_id == row.correlation_id))).first()
                header, message = await service.answer(session, txn, registry_id=self.settings.dci_receiver_id,
                                                       max_page_size=self.settings.dci_max_page_size)
                await session.execute(update(dci_deliveries).where(dci_deliveries.c.id == row_id)
                                      .values(header=header, message=message))
                await session.commit()
        error = await self._refusal(row) or await self._send(row.url, header, message)
        async with self.sessionmaker() as session:
            if error is None:
                values = {"status": "delivered", "delivered_at": now_utc(), "last_error": None,
                          "attempts": row.attempts + 1}
            else:
                attempts = row.attempts + 1
                dead = attempts >= self.settings.dci_callback_max_attempts or error.startswith(FINAL)
                wait = min(self.settings.dci_callback_backoff_s * 2 ** (attempts - 1),
                           self.settings.dci_callback_backoff_max_s)
                values = {"attempts": attempts, "last_error": error[:2000], "status": "dead" if dead else "pending",
                          "next_attempt_at": now_utc() + timedelta(seconds=wait)}
                log.warning("DCI %s to %s failed (attempt %d%s): %s", row.action, row.url, attempts,
                            ", dead-lettered" if dead else "", error)
            await session.execute(update(dci_deliveries).where(dci_deliveries.c.id == row_id).values(**values))
            await session.commit()

    async def _refusal(self, row) -> str | None:
        """A delivery the sender's registration no longer allows (disabled, or its callback URI changed since the
        request or subscription named this URL): not sent, and dead at once (an administrator sees why)."""
        async with self.sessionmaker() as session:
            sender = (await session.execute(select(dci_senders.c.status, dci_senders.c.callback_uri).where(
                dci_senders.c.sender_id == row.sender_id))).first()
        if sender is None or sender.status != "active":
            return FINAL + "the sender is no longer registered and active"
        if not under(row.url, sender.callback_uri):
            return FINAL + "the URL is no longer under the sender's registered callback URI"
        return None

    async def _send(self, url: str, header: dict, message: dict) -> str | None:
        body = {"signature": self.signer.sign(header, message), "header": header, "message": message}
        try:
            response = await self.client.post(url, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:500]}"


async def run_dci_worker(app: FastAPI) -> None:
    """Background task of the registry app (``JZ_REGISTRY_DCI_WORKER=false`` turns it off)."""
    if not app.state.settings.dci_worker or app.state.dci_signer is None:
        return
    worker = DciWorker(app.state.sessionmaker, app.state.settings, app.state.dci_signer,
                       transport=getattr(app.state, "dci_transport", None))
    app.state.dci_worker = worker
    try:
        await worker.run()
    finally:
        await worker.close()
