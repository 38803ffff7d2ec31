"""Reads the registry makes from benefits and audit on behalf of its caller (the case file, 一户一档).

Unlike ``benefits_client`` (the registry's own service token, for the exit-readiness assessment), these
calls carry the caller's Authorization header: what a caller reads through the registry is exactly what
benefits and audit would show that caller, scopes and area included. A peer that is down, slow, refuses
the token or does not know the household yields no body and a note saying why, never an error of the
whole read. Transports are injectable (``httpx.ASGITransport`` runs the real apps in-process in tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.config import RegistrySettings


@dataclass
class PeerAnswer:
    body: Any | None
    note: dict | None


def note(part: str, reason: str, message_en: str, message_zh: str, **extra: Any) -> dict:
    return {"part": part, "reason": reason, "message_en": message_en, "message_zh": message_zh, **extra}


SERVICE_ZH = {"benefits": "政策计算服务", "audit": "审计台账服务"}


class Peer:
    """One peer service (benefits or audit), read with the caller's token."""

    def __init__(self, name: str, base_url: str, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name, self.base_url, self.timeout_s, self.transport = name, base_url.rstrip("/"), timeout_s, transport

    async def get(self, part: str, path: str, *, authorization: str | None, scope: str,
                  params: dict | None = None, not_found_en: str, not_found_zh: str) -> PeerAnswer:
        """``scope``: what the peer requires, named in the note when it refuses the caller's token."""
        headers = {"Authorization": authorization} if authorization else {}
        zh = SERVICE_ZH.get(self.name, self.name)
        try:
            async with httpx.AsyncClient(base_url=self.base_url, transport=self.transport,
                                         timeout=self.timeout_s) as client:
                response = await client.get(path, params=params, headers=headers)
        except httpx.TimeoutException:
            return PeerAnswer(None, note(part, f"{self.name}_unreachable",
                                         f"{self.name} did not answer within {self.timeout_s:g} s.",
                                         f"{zh}在 {self.timeout_s:g} 秒内未响应。"))
        except httpx.HTTPError as exc:
            return PeerAnswer(None, note(part, f"{self.name}_unreachable",
                                         f"{self.name} could not be reached ({type(exc).__name__}).",
                                         f"无法连接{zh}（{type(exc).__name__}）。"))
        if response.status_code == 200:
            try:
                return PeerAnswer(response.json(), None)
            except ValueError:
                return PeerAnswer(None, note(part, f"{self.name}_error", f"{self.name} answered something other "
                                             "than JSON.", f"{zh}的应答不是 JSON。", upstream_status=200))
        if response.status_code == 403:
            return PeerAnswer(None, note(part, "forbidden", f"Your token lacks scope {scope}, which {self.name} "
                                         f"requires for this part.", f"你的令牌缺少{zh}要求的权限 {scope}。",
                                         required_scope=scope))
        if response.status_code == 401:
            return PeerAnswer(None, note(part, "unauthorized", f"{self.name} did not accept your token.",
                                         f"{zh}不接受你的令牌。"))
        if response.status_code == 404:
            return PeerAnswer(None, note(part, "not_found", not_found_en, not_found_zh))
        return PeerAnswer(None, note(part, f"{self.name}_error", f"{self.name} answered {response.status_code}.",
                                     f"{zh}返回 {response.status_code}。", upstream_status=response.status_code))


class Peers:
    def __init__(self, settings: RegistrySettings, *, benefits_transport: httpx.AsyncBaseTransport | None = None,
                 audit_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.benefits = Peer("benefits", settings.benefits_url, settings.peer_timeout_s, benefits_transport)
        self.audit = Peer("audit", settings.audit_url, settings.peer_timeout_s, audit_transport)
