"""JWT bearer tokens with scopes and an optional area claim.

Embedded profile: a development issuer whose RSA key is generated once under
``var/``; every service verifies with its public half. Production: trust an
external OIDC issuer through its JWKS URL (``JZ_JWT_JWKS_URL``).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.config import CommonSettings
from shared.problems import Problem

ALL_SCOPES = ("registry:read", "registry:write", "visits:write", "benefits:read", "benefits:evaluate",
              "credit", "settlement", "audit:read", "admin")


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    area: str | None = None  # administrative code prefix this caller is limited to
    client_id: str | None = None
    claims: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def has(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    def sees_area(self, code: str | None) -> bool:
        """An area-limited caller sees only codes under its prefix."""
        if self.area is None or self.is_admin:
            return True
        return bool(code) and code.startswith(self.area)


def load_or_create_dev_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: concurrent first starts agree on one key
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def mint_token(settings: CommonSettings, scopes: list[str] | str, *, subject: str = "dev-user",
               area: str | None = None, ttl_s: int = 12 * 3600, extra: dict | None = None) -> str:
    if isinstance(scopes, str):
        scopes = scopes.split()
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": subject,
              "scope": " ".join(scopes), "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex}
    if area:
        claims["area"] = area
    if extra:
        claims.update(extra)
    key = load_or_create_dev_key(settings.dev_key_file)
    return jwt.encode(claims, key, algorithm="RS256")


class TokenVerifier:
    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self._public_key = None
        self._extra_keys: dict[str, object] = {}

    def _key_for(self, token: str):
        if self._jwks is not None:
            return self._jwks.get_signing_key_from_jwt(token).key
        if self._public_key is None:
            if self.settings.jwt_public_key_file:
                self._public_key = serialization.load_pem_public_key(self.settings.jwt_public_key_file.read_bytes())
            else:
                self._public_key = load_or_create_dev_key(self.settings.dev_key_file).public_key()
        return self._public_key

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._key_for(token), algorithms=["RS256", "ES256"],
                                audience=self.settings.jwt_audience, issuer=self.settings.jwt_issuer,
                                options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as exc:
            raise Problem(401, "Invalid token", str(exc), type_="https://jingzhun.dev/problems/unauthorized")
        scope = claims.get("scope") or claims.get("scp") or ""
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
        return Principal(subject=str(claims["sub"]), scopes=scopes, area=claims.get("area"),
                         client_id=claims.get("client_id"), claims=claims)


_bearer = HTTPBearer(auto_error=False)


async def current_principal(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if credentials is None:
        problem = Problem(401, "Missing bearer token", "Send Authorization: Bearer <jwt>.",
                          type_="https://jingzhun.dev/problems/unauthorized")
        problem.headers = {"WWW-Authenticate": "Bearer"}
        raise problem
    return request.app.state.token_verifier.verify(credentials.credentials)


def require_scopes(*scopes: str):
    """Dependency: the caller must hold every scope listed (``admin`` holds all)."""

    async def _check(principal: Principal = Depends(current_principal)) -> Principal:
        missing = [s for s in scopes if not principal.has(s)]
        if missing:
            raise Problem(403, "Insufficient scope", f"This call needs scope(s): {' '.join(missing)}.",
                          type_="https://jingzhun.dev/problems/forbidden", required_scopes=list(scopes))
        return principal

    return _check
