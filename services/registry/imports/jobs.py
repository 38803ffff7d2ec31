"""Ledger uploads as jobs: spooled to a private file, imported in a worker process, progress on the side.

The event loop only copies the upload to a 0600 file under ``var/imports/`` and records the job. The
import itself — archive limits (``limits.py``), reading, validation, the database checks and the write
— runs in a worker process (``JZ_REGISTRY_IMPORT_WORKER=process``, the default; spawned on first use
and kept) with its own event loop and database engine, signing the events it stages with the
service's own key. So a 100,000-row ledger never stalls ``/healthz``: not even the GIL is shared.
``import_worker=thread`` runs the same in a thread of this process (no spawn, for tools and tests;
pure-Python parsing then shares the GIL, which the interpreter hands back every few milliseconds).
``bench/import_responsiveness.py`` measures the difference.

State lives in ``import_jobs`` (queued → running → done | refused | failed). Progress (phase, rows
validated, households written) is kept live in this process and saved to the row about once a second
while no write transaction is open (SQLite has one writer; the import's own transaction holds it
while writing), and with the outcome at the end. The outcome is exactly what the synchronous answer
would have been: the report (200/201) or the problem body (413/422). A worker that dies fails its
job (500, nothing written: its transaction never committed) and is replaced on the next upload.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.imports import service
from services.registry.imports.limits import UploadLimits, check_archive, is_zip
from services.registry.tables import import_jobs
from shared.auth import Principal
from shared.db import is_sqlite, make_engine, make_sessionmaker, transaction
from shared.events import utcnow
from shared.problems import Problem
from shared.signing import bind_signer, event_signer

log = logging.getLogger("registry.imports")

SPOOL_CHUNK = 1 << 20
PROGRESS_MESSAGE_INTERVAL_S = 0.25  # worker process → this one
PROGRESS_SAVE_INTERVAL_S = 1.0
MAX_STORED_ITEMS = 1000  # errors / results kept with a job (the imports row keeps as many)


@dataclass
class Progress:
    """Written by the worker thread, read by the loop (plain attribute writes: no lock needed)."""

    phase: str = "queued"
    rows_total: int | None = None
    rows_done: int = 0
    households_total: int | None = None
    households_written: int = 0
    listener: Callable[[], None] | None = None  # in a worker process: sends the fields home

    def tick(self, phase: str, advance: int, total: int) -> None:
        if phase == "validate":
            self.phase, self.rows_total = "validating", total
            self.rows_done += advance
        else:
            self.phase, self.households_total = "writing", total
            self.households_written += advance
        if self.listener is not None:
            self.listener()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        if self.listener is not None:
            self.listener()

    def update(self, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    def fields(self) -> dict[str, Any]:
        return {"phase": self.phase, "rows_total": self.rows_total, "rows_done": self.rows_done,
                "households_total": self.households_total, "households_written": self.households_written}


def _state_of(status: int) -> str:
    return "done" if status < 400 else "refused" if status < 500 else "failed"


def _trimmed(body: dict) -> dict:
    out = dict(body)
    for key in ("errors", "results"):
        if isinstance(out.get(key), list):
            out[key] = out[key][:MAX_STORED_ITEMS]
    if isinstance(out.get("report"), dict):
        out["report"] = _trimmed(out["report"])
    return out


def _failure(exc: BaseException) -> Problem:
    return Problem(500, "导入失败 / Import failed", f"导入意外中止 / The import stopped unexpectedly "
                   f"({type(exc).__name__}); nothing was written.")


def _run_in_worker(settings: Any, database_url: str, path: Path, filename: str | None, principal: Principal,
                   options: dict, limits: UploadLimits, import_id: str, progress: Progress) -> tuple[int, dict]:
    """The whole import, in a worker (thread or process): its own loop, its own engine."""
    return asyncio.run(_import(settings, database_url, path, filename, principal, options, limits, import_id,
                               progress))


async def _import(settings: Any, database_url: str, path: Path, filename: str | None, principal: Principal,
                  options: dict, limits: UploadLimits, import_id: str, progress: Progress) -> tuple[int, dict]:
    engine = make_engine(database_url)
    bind_signer(engine, event_signer(settings))  # the events it stages are signed like the service's own
    try:
        progress.set_phase("reading")
        with open(path, "rb") as handle:
            head = handle.read(4)
        if is_zip(head, filename):
            check_archive(path, limits)
        data = path.read_bytes()
        report = await service.import_ledger(make_sessionmaker(engine), data, filename, principal,
                                             progress=progress.tick, import_id=import_id, limits=limits,
                                             **options)
        return (201 if report["written"] else 200), report
    except Problem as problem:
        return problem.status, problem.body()
    finally:
        await engine.dispose()


def _worker_process_main(jobs_in, events_out) -> None:  # pragma: no cover - runs in the spawned process
    """A worker process: jobs arrive one at a time; progress and the result go back tagged with the id."""
    while True:
        try:
            job = jobs_in.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        import_id = job["import_id"]
        progress, last_sent = Progress(), 0.0

        def send_progress() -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= PROGRESS_MESSAGE_INTERVAL_S:
                last_sent = now
                events_out.send(("progress", import_id, {k: v for k, v in progress.fields().items()}))

        progress.listener = send_progress
        try:
            result = _run_in_worker(job["settings"], job["database_url"], job["path"], job["filename"],
                                    job["principal"], job["options"], job["limits"], import_id, progress)
        except BaseException as exc:  # noqa: BLE001 - the parent records it; the worker stays
            log.exception("import %s failed", import_id)
            result = (500, _failure(exc).body())
        progress.listener = None
        events_out.send(("progress", import_id, progress.fields()))
        events_out.send(("result", import_id, result))


class _WorkerProcess:
    """One spawned worker process and the two pipes to it; one job at a time."""

    def __init__(self, live: dict[str, Progress]) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads and a loop
        jobs_in, self.jobs_out = context.Pipe(duplex=False)
        self.events_in, events_out = context.Pipe(duplex=False)
        self.process = context.Process(target=_worker_process_main, args=(jobs_in, events_out), daemon=True,
                                       name="ledger-import-worker")
        self.process.start()
        jobs_in.close()
        events_out.close()
        self.live = live
        self.current: tuple[str, asyncio.Future] | None = None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.events_in.fileno(), self._on_message)
        self.alive = True

    def run(self, job: dict) -> asyncio.Future:
        future = self.loop.create_future()
        self.current = (job["import_id"], future)
        self.jobs_out.send(job)  # small: paths, options and settings, never the file
        return future

    def _on_message(self) -> None:
        try:
            while self.events_in.poll():
                kind, import_id, payload = self.events_in.recv()
                if kind == "progress":
                    live = self.live.get(import_id)
                    if live is not None:
                        live.update(payload)
                elif self.current is not None and self.current[0] == import_id:
                    _, future = self.current
                    self.current = None
                    if not future.done():
                        future.set_result(tuple(payload))
        except (EOFError, OSError):
            self._died()

    def _died(self) -> None:
        self.alive = False
        self.loop.remove_reader(self.events_in.fileno())
        if self.current is not None:
            import_id, future = self.current
            self.current = None
            if not future.done():
                future.set_exception(RuntimeError(f"the import worker process exited "
                                                  f"(code {self.process.exitcode})"))

    def stop(self) -> None:
        if self.alive:
            self.loop.remove_reader(self.events_in.fileno())
            self.alive = False
        try:
            self.jobs_out.send(None)
        except OSError:
            pass
        self.process.join(timeout=0.5)
        if self.process.is_alive():
            self.process.kill()  # a running import's transaction is rolled back with its connection
            self.process.join(timeout=5)
        self.jobs_out.close()
        self.events_in.close()


class ImportJobs:
    """The registry's import workers (one per app, ``app.state.import_jobs``)."""

    def __init__(self, settings: Any, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], *,
                 spool_dir: Path, limits: UploadLimits, workers: int = 1, mode: str = "process") -> None:
        self.settings = settings
        self.database_url = engine.url.render_as_string(hide_password=False)
        self.sqlite = is_sqlite(self.database_url)
        self.sessionmaker = sessionmaker
        self.spool_dir = spool_dir
        self.limits = limits
        self.mode = mode
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger-import") \
            if mode == "thread" else None
        self.slots = asyncio.Semaphore(workers)  # process mode: one job per worker process at a time
        self.idle: list[_WorkerProcess] = []
        self.processes: list[_WorkerProcess] = []
        self.live: dict[str, Progress] = {}
        self.tasks: set[asyncio.Task] = set()

    async def spool(self, upload) -> tuple[Path, int]:
        """Copy an upload (Starlette ``UploadFile``) to a fresh 0600 file; the loop only moves bytes."""
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self.spool_dir)  # 0600
        path, size = Path(name), 0
        try:
            with os.fdopen(descriptor, "wb") as handle:
                while chunk := await upload.read(SPOOL_CHUNK):
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size

    async def submit(self, path: Path, size: int, filename: str | None, principal: Principal,
                     options: dict) -> tuple[str, asyncio.Task]:
        """Record the job and start it; the task's result is ``(status, body)``."""
        import_id = service.new_import_id()
        now = utcnow()
        try:
            async with transaction(self.sessionmaker) as session:
                await session.execute(insert(import_jobs).values(
                    id=import_id, state="queued", phase="queued", filename=(filename or "")[:255],
                    actor=principal.subject, area=principal.area, size_bytes=size, options=options, rows_done=0,
                    created_at=now, updated_at=now))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        progress = self.live[import_id] = Progress()
        task = asyncio.create_task(self._run(import_id, path, filename, principal, options, progress),
                                   name=f"import:{import_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return import_id, task

    async def _run(self, import_id: str, path: Path, filename: str | None, principal: Principal, options: dict,
                   progress: Progress) -> tuple[int, dict]:
        saver = asyncio.create_task(self._save_progress(import_id, progress))
        try:
            try:
                status, body = await self._work(import_id, path, filename, principal, options, progress)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the job records the failure instead of losing it
                log.exception("import %s failed", import_id)
                status, body = 500, _failure(exc).body()
        finally:
            saver.cancel()
            path.unlink(missing_ok=True)
        progress.phase = _state_of(status)
        await self._finish(import_id, status, body, progress)
        self.live.pop(import_id, None)
        return status, body

    async def _work(self, import_id: str, path: Path, filename: str | None, principal: Principal, options: dict,
                    progress: Progress) -> tuple[int, dict]:
        if self.mode == "thread":
            loop = asyncio.get_running_loop()
            return await asyncio.shield(loop.run_in_executor(
                self.executor, _run_in_worker, self.settings, self.database_url, path, filename, principal, options,
                self.limits, import_id, progress))
        async with self.slots:
            worker = self.idle.pop() if self.idle else None
            if worker is None or not worker.alive:
                worker = _WorkerProcess(self.live)
                self.processes.append(worker)
            try:
                return await asyncio.shield(worker.run({
                    "import_id": import_id, "settings": self.settings, "database_url": self.database_url,
                    "path": path, "filename": filename, "principal": principal, "options": options,
                    "limits": self.limits}))
            finally:  # (after shutdown the lists are empty and the worker stopped: keep neither)
                if worker.alive and worker.current is None and worker in self.processes:
                    self.idle.append(worker)
                elif not worker.alive and worker in self.processes:
                    self.processes.remove(worker)

    async def _save_progress(self, import_id: str, progress: Progress) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SAVE_INTERVAL_S)
            if self.sqlite and progress.phase == "writing":
                continue  # the import's transaction holds SQLite's only write lock
            fields = progress.fields()  # written even when unchanged: updated_at is the job's heartbeat
            try:
                async with transaction(self.sessionmaker) as session:
                    await session.execute(update(import_jobs).where(import_jobs.c.id == import_id).values(
                        state="running", phase=fields["phase"], rows_total=fields["rows_total"],
                        rows_done=fields["rows_done"], updated_at=utcnow()))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - progress is best effort; the outcome is saved at the end
                log.warning("saving the progress of import %s failed", import_id, exc_info=True)

    async def _finish(self, import_id: str, status: int, body: dict, progress: Progress) -> None:
        now = utcnow()
        async with transaction(self.sessionmaker) as session:
            await session.execute(update(import_jobs).where(import_jobs.c.id == import_id).values(
                state=_state_of(status), phase=progress.phase, rows_total=progress.rows_total,
                rows_done=progress.rows_done, status_code=status, outcome=_trimmed(body), updated_at=now,
                finished_at=now))

    async def status(self, session: AsyncSession, import_id: str, principal: Principal) -> dict:
        """What ``GET /v1/imports/{id}`` answers: the job (state, progress, outcome), with the stored
        report of an import that wrote households."""
        job = (await session.execute(select(import_jobs).where(import_jobs.c.id == import_id))).first()
        written = await service.get_import(session, import_id, principal)
        if job is None and written is None:
            raise service.import_not_found(import_id)
        if job is not None and not service.may_see_import(principal, job.area):
            raise service.import_not_found(import_id)
        if job is None:  # an import from before jobs (0004), or the CLI's
            return {**written, "state": "done"}
        live = self.live.get(import_id)
        written_count = (job.outcome or {}).get("written", 0)  # the report's count once the job is over
        fields = live.fields() if live is not None else {
            "phase": job.phase, "rows_total": job.rows_total, "rows_done": job.rows_done,
            "households_total": written_count if job.state == "done" else None,
            "households_written": written_count}
        if live is None and written is None and self._orphaned(job):
            job = await self._mark_interrupted(session, job)
        state = job.state if live is None or job.state != "queued" else ("queued" if live.phase == "queued"
                                                                        else "running")
        answer = {"import_id": import_id, "state": state, **fields, "filename": job.filename, "actor": job.actor,
                  "size_bytes": job.size_bytes, "options": job.options, "created_at": _iso(job.created_at),
                  "finished_at": _iso(job.finished_at), "status_code": job.status_code}
        if written is not None:  # committed: done, even if the job row is a moment behind
            # the report counts what was validated and written: the live progress may be up to a message
            # interval behind it (a small import can commit before its first progress message arrives)
            rows = written.get("rows", answer["rows_done"])
            return {**written, **answer, "state": "done", "phase": "done", "status_code": 201,
                    "rows_total": rows, "rows_done": rows,
                    "households_total": written["written"], "households_written": written["written"]}
        if job.outcome is not None:
            answer["outcome"] = job.outcome
        return answer

    def _orphaned(self, job) -> bool:
        """An unfinished job that no process is working on: not live here, and its heartbeat (saved every
        few seconds by the process running it) is older than ``import_stale_after_s``, e.g. after a
        ``kill -9`` of the registry. Its import was rolled back with the dead process's transaction."""
        if job.state not in ("queued", "running"):
            return False
        updated = job.updated_at if job.updated_at.tzinfo else job.updated_at.replace(tzinfo=timezone.utc)
        return (utcnow() - updated).total_seconds() > self.settings.import_stale_after_s

    async def _mark_interrupted(self, session: AsyncSession, job):
        now = utcnow()
        await session.execute(update(import_jobs).where(import_jobs.c.id == job.id,
                                                        import_jobs.c.state.in_(("queued", "running")))
                              .values(state="failed", status_code=503, updated_at=now, finished_at=now,
                                      outcome=interrupted_outcome()))
        await session.commit()  # the caller's read session: the verdict is kept, not recomputed per GET
        return (await session.execute(select(import_jobs).where(import_jobs.c.id == job.id))).first()

    async def shutdown(self) -> None:
        """Jobs not finished are dropped (their rows say so); a worker process is stopped, so a running
        import's transaction is rolled back (a worker thread cannot be stopped: it may still commit)."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        for worker in self.processes:
            worker.stop()
        self.processes, self.idle = [], []
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.live:
            now = utcnow()
            async with transaction(self.sessionmaker) as session:
                await session.execute(update(import_jobs).where(import_jobs.c.id.in_(list(self.live)),
                                                                import_jobs.c.state.in_(("queued", "running")))
                                      .values(state="failed", status_code=503, updated_at=now, finished_at=now,
                                              outcome=interrupted_outcome()))


def interrupted_outcome() -> dict:
    return Problem(503, "导入中断 / Import interrupted",
                   "服务停止时导入未完成，未写入任何数据，请重新上传 / The service stopped before the import "
                   "finished; nothing was written. Upload the file again.").body()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()  # SQLite drops the zone


def import_jobs_of(app) -> ImportJobs:
    """The app's import workers, made on first use from its settings and engine."""
    jobs = getattr(app.state, "import_jobs", None)
    if jobs is None:
        settings = app.state.settings
        jobs = app.state.import_jobs = ImportJobs(
            settings, app.state.engine, app.state.sessionmaker, spool_dir=Path(settings.var_dir) / "imports",
            limits=UploadLimits.from_settings(settings), workers=settings.import_workers,
            mode=settings.import_worker)
    return jobs


async def shutdown_import_jobs(app) -> None:
    jobs = getattr(app.state, "import_jobs", None)
    if jobs is not None:
        app.state.import_jobs = None
        await jobs.shutdown()
