"""Policy lifecycle in benefits: publications stored, audited, reloaded by every process.

Publishing writes, in one transaction: the ``policy_publications`` row (the text as sent, the
parsed spec, the diff, the effective date, who), the ``policy.published`` event in the outbox
(so audit chains it) and a bulk recompute job for the pack's region. After the commit this
process reloads at once; every other benefits process (API replicas, the consumer) notices the
new highest publication id within ``RELOAD_INTERVAL_S`` and reloads too, without a restart.

The packs in force are the files plus every publication (``PackRegistry.with_publications``):
a publication governs evaluation dates from its effective date on, so results for earlier
dates do not change.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, insert, select, text as sql, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.benefits.recompute import service as recompute
from services.benefits.recompute.scope import Scope
from services.benefits.simulation.service import simulate
from services.benefits.tables import outbox, policy_publications
from shared.config import TOPIC_BENEFITS
from shared.db import transaction
from shared.events import Envelope, as_aware, utcnow
from shared.outbox import add_to_outbox
from shared.policy import PackRegistry, PolicyPackError
from shared.policy.publication import CheckedPack, content_hash, diff_pack, validate_pack_text
from shared.policy.resolution import PackSpec, Publication, load_pack_text

log = logging.getLogger("benefits.policy")

#: How often a process asks whether someone published (one cheap max(id) query).
RELOAD_INTERVAL_S = 2.0
_PUBLISH_LOCK = 7_301_011  # PostgreSQL advisory lock: publications of all packs take turns


class PublicationRejected(Exception):
    """422 with the problems, or 409 for a version already taken by other content."""

    def __init__(self, status: int, title: str, detail: str, problems: list[dict] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.problems = status, title, detail, problems or []


class LivePacks:
    """The packs in force for this process; stands in for a ``PackRegistry`` everywhere.

    Reading code (engine, consumer, jobs, views) holds this object, and each call goes to the
    registry current at that moment, so a reload is seen by all of them at once."""

    def __init__(self, files: PackRegistry, sessionmaker: async_sessionmaker[AsyncSession]):
        self.files, self.sessionmaker = files, sessionmaker
        self.current: PackRegistry = files
        self.loaded_id = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    async def refresh(self) -> bool:
        """Reload when a publication newer than the loaded ones exists; True when it reloaded."""
        async with self.sessionmaker() as session:
            newest = await session.scalar(select(func.max(policy_publications.c.id))) or 0
            if newest == self.loaded_id:
                return False
            rows = (await session.execute(select(policy_publications.c.id, policy_publications.c.name,
                                                 policy_publications.c.text, policy_publications.c.effective_from)
                                          .order_by(policy_publications.c.id))).all()
        # A handful of rows per office and year: loading them all is the point (they are the policy).
        publications = [Publication(row.id, load_pack_text(row.text, f"publication {row.id} ({row.name})"),
                                    row.effective_from) for row in rows]
        self.current = self.files.with_publications(publications)
        self.loaded_id = rows[-1].id if rows else 0
        log.info("policy publications loaded up to id %s", self.loaded_id)
        return True


async def watch_publications(app) -> None:
    """Background task of every benefits process: reload soon after any process publishes."""
    packs = app.state.packs
    while True:
        await asyncio.sleep(getattr(app.state, "policy_reload_interval_s", RELOAD_INTERVAL_S))
        try:
            await packs.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep the packs in force; a later round retries
            log.exception("could not reload policy publications; the previous packs stay in force")


def check(text: str, packs: PackRegistry, effective_from: dt.date | None) -> CheckedPack:
    return validate_pack_text(text, packs, effective_from=effective_from)


def _checked_or_raise(text: str, packs: PackRegistry, effective_from: dt.date | None) -> PackSpec:
    checked = check(text, packs, effective_from)
    if not checked.ok:
        raise PublicationRejected(422, "Invalid policy pack",
                                  f"政策包有 {len(checked.problems)} 处问题，未发布。/ The pack has "
                                  f"{len(checked.problems)} problem(s); nothing was published.",
                                  [problem.view() for problem in checked.problems])
    return checked.spec


def scope_of(spec: PackSpec) -> Scope:
    return Scope(kind="region", code=spec.region) if len(spec.region) >= 2 else Scope(kind="all")


def default_simulation_date(spec: PackSpec, effective_from: dt.date | None) -> dt.date:
    return max(effective_from or spec.valid_from, spec.valid_from)


async def simulate_candidate(session: AsyncSession, packs: PackRegistry, text: str, *,
                             effective_from: dt.date | None, as_of: dt.date | None) -> dict[str, Any]:
    """The deltas over the stored households of the pack's region if it were published."""
    spec = _checked_or_raise(text, packs, effective_from)
    day = as_of or default_simulation_date(spec, effective_from)
    candidate = packs.with_publication(spec, effective_from or spec.valid_from)
    result = await simulate(session, packs, pack=spec.name, overrides={}, scope=scope_of(spec), as_of=day,
                            after_packs=candidate)
    result.pop("overrides")
    return {**result, "version": spec.version,
            "effective_from": (effective_from or spec.valid_from).isoformat()}


def publication_view(row, *, with_text: bool = True) -> dict[str, Any]:
    view = {"id": row.id, "pack": row.name, "version": row.version, "content_hash": row.content_hash,
            "effective_from": row.effective_from.isoformat(), "published_by": row.published_by,
            "published_at": as_aware(row.published_at).isoformat(), "recompute_job_id": row.recompute_job_id,
            "diff": row.diff}
    if with_text:
        view.update(text=row.text, spec=row.spec)
    return view


async def _existing(session: AsyncSession, name: str, version: str):
    return (await session.execute(select(policy_publications).where(policy_publications.c.name == name,
                                                                    policy_publications.c.version == version))).first()


def _same_or_conflict(row, digest: str, effective_from: dt.date) -> dict[str, Any]:
    if row.content_hash == digest and row.effective_from == effective_from:
        return {"publication": publication_view(row), "created": False}
    what = "内容不同" if row.content_hash != digest else f"生效日期不同（已发布：{row.effective_from}）"
    raise PublicationRejected(
        409, "Version already published",
        f"{row.name} {row.version} 已发布（第 {row.id} 号），{what}；请使用新的 version。/ {row.name} "
        f"{row.version} is already publication {row.id} with "
        f"{'other content' if row.content_hash != digest else f'effective date {row.effective_from}'}; "
        "give the pack a new version.")


async def publish(sessionmaker: async_sessionmaker[AsyncSession], live: LivePacks, text: str, *,
                  effective_from: dt.date, published_by: str, recompute_as_of: dt.date) -> dict[str, Any]:
    """Validate again, store, audit and start the recompute; the same content again returns the
    first publication. Returns ``{"publication", "created", "job"}`` (job to start when created)."""
    async with transaction(sessionmaker) as session:
        if session.bind.dialect.name == "postgresql":
            await session.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": _PUBLISH_LOCK})
        await live.refresh()  # under the lock: validate against every publication committed so far
        packs = live.current
        # The idempotent repeat is answered before the checks: the first one already passed them.
        spec = check(text, packs, None).spec
        if spec is not None:
            row = await _existing(session, spec.name, spec.version)
            if row is not None:
                return _same_or_conflict(row, content_hash(spec), effective_from)
            if spec.name in live.files.names() and live.files.spec(spec.name).version == spec.version:
                raise PublicationRejected(
                    409, "Version already in force",
                    f"{spec.name} {spec.version} 是随系统发布的文件版本；请使用新的 version。/ {spec.name} "
                    f"{spec.version} is the version shipped as a file; give the pack a new version.")
        spec = _checked_or_raise(text, packs, effective_from)
        digest = content_hash(spec)
        diff = diff_pack(spec, packs, effective_from=effective_from)
        now = utcnow()
        try:
            publication_id = (await session.execute(insert(policy_publications).values(
                name=spec.name, version=spec.version, spec=spec.model_dump(mode="json"), text=text,
                content_hash=digest, diff=diff, effective_from=effective_from, published_by=published_by[:128],
                published_at=now).returning(policy_publications.c.id))).scalar_one()
        except IntegrityError:
            # A concurrent publish of the same version committed first (SQLite has no advisory lock).
            raise PublicationRejected(409, "Version already published",
                                      f"{spec.name} {spec.version} 刚被发布。/ {spec.name} {spec.version} was "
                                      "just published; repeat the request to see it.") from None
        job = await recompute.create_job(session, scope_of(spec), recompute_as_of, requested_by=published_by)
        await session.execute(update(policy_publications).where(policy_publications.c.id == publication_id)
                              .values(recompute_job_id=job["id"]))
        envelope = Envelope(
            source="benefits", type="policy.published", subject=f"policy/{spec.name}", sequence=publication_id,
            actor=published_by, time=now,
            data={"publication_id": publication_id, "pack": spec.name, "version": spec.version,
                  "region": spec.region, "effective_from": effective_from.isoformat(), "content_hash": digest,
                  "published_by": published_by, "diff": diff, "recompute_job_id": job["id"]})
        await add_to_outbox(session, outbox, TOPIC_BENEFITS, f"policy/{spec.name}", envelope)
        row = (await session.execute(select(policy_publications)
                                     .where(policy_publications.c.id == publication_id))).first()
        result = {"publication": publication_view(row), "created": True, "job": job}
    await live.refresh()  # this process at once; the others within RELOAD_INTERVAL_S
    return result


async def publications_page(session: AsyncSession, *, pack: str | None, cursor: int | None,
                            limit: int) -> tuple[list[dict], int | None]:
    query = select(policy_publications).order_by(policy_publications.c.id).limit(limit + 1)
    if pack:
        query = query.where(policy_publications.c.name == pack)
    if cursor:
        query = query.where(policy_publications.c.id > cursor)
    rows = (await session.execute(query)).all()
    items = [publication_view(row, with_text=False) for row in rows[:limit]]
    return items, (rows[limit - 1].id if len(rows) > limit else None)


async def get_publication(session: AsyncSession, publication_id: int) -> dict[str, Any] | None:
    row = (await session.execute(select(policy_publications)
                                 .where(policy_publications.c.id == publication_id))).first()
    return publication_view(row) if row else None


async def load_publications_or_refuse(app) -> None:
    """At start-up: the files plus every stored publication; one that no longer loads stops the start,
    like a broken pack file (silently dropping it would change the policy in force)."""
    live = LivePacks(app.state.packs, app.state.sessionmaker)
    try:
        await live.refresh()
    except PolicyPackError as exc:
        log.critical("refusing to start: a stored policy publication does not load: %s", exc)
        raise
    app.state.packs = live
