"""The registry's calls to benefits: ``POST /v1/evaluate`` for the exit-readiness assessment,
``GET /v1/households/{id}/monitoring/elimination`` for the risk-elimination criteria of a monitoring object,
and ``POST /oauth/token`` for the DCI token API (a partner's own client credentials, passed on).

The HTTP transport is injectable (``httpx.MockTransport`` in tests, ``httpx.ASGITransport`` to run
against the real benefits app in-process); the registry authenticates with a service token, scope
``benefits:evaluate`` (``benefits:read`` for the elimination answer): minted by the development issuer in the embedded profile, obtained from the
external issuer with client credentials in production (``JZ_REGISTRY_SERVICE_TOKEN_URL``,
``JZ_REGISTRY_SERVICE_CLIENT_ID``, ``JZ_REGISTRY_SERVICE_CLIENT_SECRET``).
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
        self._tokens: dict[str, tuple[str, float]] = {}  # scope → (token, expires at)

    async def _service_token(self, scope: str = "benefits:evaluate") -> str:
        token = self._tokens.get(scope)
        if token is None or token[1] < time.time() + 60:
            if self.settings.profile == "production":
                token = await self._issuer_token(scope)
            else:
                ttl = 600
                token = (mint_token(self.settings, [scope], subject=SERVICE_SUBJECT, ttl_s=ttl), time.time() + ttl)
            self._tokens[scope] = token
        return token[0]

    async def _issuer_token(self, scope: str) -> tuple[str, float]:
        """Client credentials at the external issuer (there is no development issuer in production)."""
        s = self.settings
        if not (s.service_token_url and s.service_client_id and s.service_client_secret):
            raise Problem(503, "Benefits service unavailable",
                          "In production the registry calls benefits with a token from the external issuer: set "
                          "JZ_REGISTRY_SERVICE_TOKEN_URL, JZ_REGISTRY_SERVICE_CLIENT_ID and "
                          "JZ_REGISTRY_SERVICE_CLIENT_SECRET; nothing was changed.", type_=UNAVAILABLE)
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout_s) as client:
                response = await client.post(s.service_token_url, data={"grant_type": "client_credentials",
                                                                        "scope": scope},
                                             auth=(s.service_client_id, s.service_client_secret))
            response.raise_for_status()
            body = response.json()
            return body["access_token"], time.time() + float(body.get("expires_in", 300))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Problem(503, "Benefits service unavailable",
                          f"Could not get a service token from the issuer ({type(exc).__name__}); "
                          "nothing was changed, retry later.", type_=UNAVAILABLE) from exc

    async def evaluate(self, household: dict, as_of: date) -> dict:
        headers = {"Authorization": f"Bearer {await self._service_token()}"}
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

    async def monitoring_elimination(self, household_id: str, as_of: date) -> dict:
        """Benefits' risk-elimination answer ``{household_id, eligible, months_above_range, above_range_since,
        explanation, source, as_of}``. Benefits not knowing the household is an answer too (not eligible,
        saying so); benefits down or failing is 503 / 502 and nothing is changed."""
        headers = {"Authorization": f"Bearer {await self._service_token('benefits:read')}"}
        try:
            async with httpx.AsyncClient(base_url=self.settings.benefits_url, transport=self.transport,
                                         timeout=self.timeout_s) as client:
                response = await client.get(f"/v1/households/{household_id}/monitoring/elimination",
                                            params={"as_of": as_of.isoformat()}, headers=headers)
        except httpx.HTTPError as exc:
            raise Problem(503, "Benefits service unavailable",
                          f"Could not reach benefits to assess risk elimination ({type(exc).__name__}); "
                          "nothing was changed, retry later.", type_=UNAVAILABLE) from exc
        if response.status_code == 404:
            return {"household_id": household_id, "eligible": False, "months_above_range": None,
                    "above_range_since": None, "as_of": as_of.isoformat(), "source": None,
                    "explanation": [{"condition": "benefits_knows_household", "value": False, "passed": False}]}
        if response.status_code != 200:
            raise Problem(503 if response.status_code >= 500 else 502, "Benefits evaluation failed",
                          f"benefits answered {response.status_code}; nothing was changed.", type_=UNAVAILABLE,
                          upstream_status=response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise Problem(502, "Benefits evaluation failed", "benefits answered something other than JSON; "
                          "nothing was changed.", type_=UNAVAILABLE, upstream_status=200) from exc
        if not isinstance(body, dict) or not isinstance(body.get("eligible"), bool):
            raise Problem(502, "Benefits evaluation failed", "benefits' elimination answer has no boolean "
                          "eligible; nothing was changed.", type_=UNAVAILABLE, upstream_status=200)
        return body

    async def partner_token(self, form: dict[str, str], authorization: str | None = None, *,
                            caller_address: str | None = None) -> httpx.Response:
        """Benefits' answer to ``POST /oauth/token`` with a partner's form (and its HTTP Basic credentials), as
        it came: the partner client registry is benefits'. The partner authenticates itself; the registry's
        service token only vouches for the partner's address (``caller_address``), so benefits counts failed
        attempts per partner address and not all under the registry's. Nothing of the request is logged here
        (it holds the client secret). Benefits unreachable is 503."""
        headers = {"Authorization": authorization} if authorization else {}
        if caller_address:
            try:
                vouch = await self._service_token()
            except Problem:  # no service credentials (production, unset): counted under the registry's address
                vouch = None
            if vouch:
                headers.update({"X-Jingzhun-Client-Address": caller_address, "X-Jingzhun-Forwarder": f"Bearer {vouch}"})
        try:
            async with httpx.AsyncClient(base_url=self.settings.benefits_url, transport=self.transport,
                                         timeout=self.timeout_s) as client:
                return await client.post("/oauth/token", data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise Problem(503, "Benefits service unavailable",
                          f"Could not reach benefits, which holds the partner clients, to issue the token "
                          f"({type(exc).__name__}); retry later.", type_=UNAVAILABLE) from exc
