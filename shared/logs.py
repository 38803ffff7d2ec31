"""Structured JSON logs carrying the request id of the request being served.

Every request is logged once (logger ``http``: method, path, status, ms) at INFO. That line is on every
request's path, so it is made cheaply (issue 15): the record is built without looking up the caller's frame,
the timestamp's second is formatted once per second, and the request id is 128 pseudo-random bits in hex; lines
are written by a thread (``BackgroundStreamHandler``), so a slow reader of stdout never stalls the event loop.
"""
from __future__ import annotations

import collections
import contextvars
import json
import logging
import random
import sys
import threading
import time


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _LineWriter:
    """One thread per output stream that writes the lines handed to it every ``interval_s``, all in one write.

    The event loop never waits on the stream: a pipe whose reader lags (the launcher of ``jingzhun run`` on a
    busy machine, a slow log collector) used to stall every request for as long as one log line took to get
    through. Handing a line over is a ``deque.append`` (no lock, no thread woken per line). Past
    ``MAX_PENDING`` lines the caller writes them itself: back pressure, never lost lines.
    """
    MAX_PENDING = 10_000
    _by_stream: dict[int, "_LineWriter"] = {}
    _lock = threading.Lock()

    def __init__(self, stream, interval_s: float = 0.05) -> None:
        self.stream, self.interval_s = stream, interval_s
        self.pending: collections.deque[str] = collections.deque()
        self._write_lock = threading.Lock()  # one writer at a time: the thread, or a caller flushing
        self.thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self.thread.start()

    @classmethod
    def for_stream(cls, stream) -> "_LineWriter":
        with cls._lock:
            writer = cls._by_stream.get(id(stream))
            if writer is None or writer.stream is not stream or not writer.thread.is_alive():
                writer = cls._by_stream[id(stream)] = cls(stream)
            return writer

    def put(self, line: str) -> None:
        self.pending.append(line)
        if len(self.pending) > self.MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Writes everything handed over so far, in order, before returning."""
        with self._write_lock:
            lines = []
            try:
                while True:
                    lines.append(self.pending.popleft())
            except IndexError:
                pass
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:  # noqa: BLE001 - a closed or broken stream: the lines are lost, not the service
                    pass

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            if self.pending:
                self.flush()


class BackgroundStreamHandler(logging.Handler):
    """Formats a record where it is logged (the request id is the caller's) and leaves the writing to a
    thread (``_LineWriter``). Warnings and errors wait until they are written, so they are out before
    whatever comes next (a crash, an exit)."""

    def __init__(self, stream=None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        self.writer = _LineWriter.for_stream(self.stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)
            return
        self.writer.put(line)
        if record.levelno >= logging.WARNING:
            self.writer.flush()

    def flush(self) -> None:  # logging.shutdown() calls it at exit: nothing queued is lost on a clean exit
        self.writer.flush()


def configure_logging(service: str, level: str = "INFO", as_json: bool = True) -> None:
    handler = BackgroundStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if as_json else logging.Formatter(
        f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel("WARNING")


class RequestIdMiddleware:
    """Pure ASGI middleware (no per-request task like BaseHTTPMiddleware): a request id for
    every request, echoed in ``X-Request-ID`` and carried by every log line it causes."""

    def __init__(self, app) -> None:
        self.app = app
        self.log = logging.getLogger("http")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_request(self.log, scope, status, started)
            request_id_var.reset(token)


def request_id_of(scope) -> str:
    """The caller's ``X-Request-ID`` (at most 128 characters), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            request_id = value.decode("latin-1")[:128]
            if request_id:
                return request_id
            break
    # 32 hex digits as uuid4().hex gave, without a getrandom() call per request (tens of µs on some VMs);
    # the module's generator is seeded from the OS at start and again in a forked child.
    return f"{random.getrandbits(128):032x}"


def log_request(log: logging.Logger, scope, status: int, started: float) -> None:
    """The request's access line (logger ``http``: method, path, status, ms since ``started``)."""
    if log.isEnabledFor(logging.INFO):  # the record without Logger.info's search for the caller's frame
        method, path = scope["method"], scope["path"]
        fields = {"method": method, "path": path, "status": status,
                  "ms": round((time.perf_counter() - started) * 1000, 2)}
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status),
                                  None, extra={"fields": fields}))
