"""The registry's one call to benefits: ``POST /v1/evaluate`` for the exit-readiness assessment.

The HTTP transport is injectable (``httpx.MockTransport`` in tests, ``httpx.ASGITransport`` to run
against the real benefits app in-process); the registry authenticates with a service token it
mints itself, scope ``benefits:evaluate``.
"""
from __future__ import annotations

import time
from datetime import date

import httpx

from services.registry.workflows.machine import ExitReadiness
from shared.auth import mint_token
from shared.config import RegistrySettings
from shared.problems import Problem

SERVICE_SUBJECT = "service:registry"
UNAVAILABLE = "https://jingzhun.dev/problems/benefits-unavailable"
# Reported as unmet when benefits did not assess exit readiness at all (e.g. no pack enables it).
NOT_ASSESSED = "exit_readiness_not_assessed"


class BenefitsClient:
    def __init__(self, settings: RegistrySettings, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 10.0) -> None:
        self.settings, self.transport, self.timeout_s = settings, transport, timeout_s
        self._token: tuple[str, float] | None = None

    def _service_token(self) -> str:
        if self._token is None or self._token[1] < time.time() + 60:
            ttl = 600
            self._token = (mint_token(self.settings, ["benefits:evaluate"], subject=SERVICE_SUBJECT, ttl_s=ttl),
                           time.time() + ttl)
        return self._token[0]

    async def evaluate(self, household: dict, as_of: date) -> dict:
        headers = {"Authorization": f"Bearer {self._service_token()}"}
        try:
            async with httpx.AsyncClient(base_url=self.settings.benefits_url, transport=self.transport,
                                         timeout=self.timeout_s) as client:
                response = await client.post("/v1/evaluate", json={"household": household,
                                                                   "as_of": as_of.isoformat()},
                                             headers=headers)
        except httpx.HTTPError as exc:
            raise Problem(503, "Benefits service unavailable",
                          f"Could not reach benefits to assess exit readiness ({type(exc).__name__}); "
                          "nothing was changed, retry later.", type_=UNAVAILABLE) from exc
        if response.status_code != 200:
            raise Problem(503 if response.status_code >= 500 else 502, "Benefits evaluation failed",
                          f"benefits answered {response.status_code}; nothing was changed.", type_=UNAVAILABLE,
                          upstream_status=response.status_code)
        return response.json()

    async def exit_readiness(self, household: dict, as_of: date) -> tuple[ExitReadiness, dict | None]:
        evaluation = await self.evaluate(household, as_of)
        for assessment in evaluation.get("assessments") or []:
            if assessment.get("kind") == "exit_readiness":
                return ExitReadiness.from_assessment(assessment), {
                    **assessment, "policy": (evaluation.get("policy") or {}).get("pack"), "as_of": as_of.isoformat()}
        return ExitReadiness(ready=False, unmet=(NOT_ASSESSED,)), None
