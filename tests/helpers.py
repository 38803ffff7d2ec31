"""Helpers for tests that run services in-process."""
from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = REPO.parent / "shared" / "spec" / "examples"
VENDORED_EXAMPLES = REPO / "jingzhun_cli" / "examples"  # the demo district's copy of the contract examples


def _examples_dir() -> Path:
    """The contract's examples live in ../shared/spec/examples beside the repository; a clone
    without that folder falls back to the vendored copy, which a test keeps identical."""
    override = os.environ.get("JZ_SPEC_EXAMPLES_DIR")
    if override:
        return Path(override)
    return SHARED_EXAMPLES if SHARED_EXAMPLES.is_dir() else VENDORED_EXAMPLES


EXAMPLES_DIR = _examples_dir()


def example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def household_body(name: str = "nankang-farmer", **overrides) -> dict:
    """An example household as a registry create body (no ids, no version)."""
    household = copy.deepcopy(example(name)["household"])
    household.pop("id"), household.pop("version")
    for member in household["members"]:
        member.pop("id")
    household["status"] = "candidate"  # only admins may bring a household in with another status
    household.update(overrides)
    return household


@asynccontextmanager
async def running_app(app, token: str | None = None):
    async with app.router.lifespan_context(app):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     headers=headers) as client:
            yield client


async def eventually(probe, timeout: float = 30.0, interval: float = 0.1):
    """Poll an async probe until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def signed(envelope, var_dir):
    """Sign an envelope as its source service would: with that service's embedded key under ``var_dir``
    (the key the services of a test trust, since they share the test's var_dir)."""
    from shared.config import SETTINGS_CLASSES
    from shared.signing import event_signer, sign_envelope
    return sign_envelope(envelope, event_signer(SETTINGS_CLASSES[envelope.source](var_dir=var_dir)))


def signed_bytes(envelope, var_dir) -> bytes:
    return signed(envelope, var_dir).to_bytes()
