"""JWT bearer tokens with scopes and an optional area claim.

Two issuers are trusted, each for its own kind of token:

* **staff tokens** (people, services): in the embedded profile a development issuer whose RSA key
  is generated once under ``var/`` (``jingzhun token``); in production an external OIDC issuer
  through its JWKS URL (``JZ_JWT_JWKS_URL``) or a public key file. The development key is never
  created nor trusted in production.
* **partner tokens** (banks, insurers): issued by benefits' ``/oauth/token``, signed with the
  partner signing key (``JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE``) under the issuer name
  ``JZ_PARTNER_TOKEN_ISSUER``, published at benefits' ``/.well-known/jwks.json``. Benefits verifies
  them with the key it holds, the other services through that JWKS. A partner-key token carries
  partner scopes only, so that key can never mint an administrator.

JWKS documents are fetched asynchronously and cached (``JwksCache``): a slow key server delays only
the requests whose key is not cached yet, and at most one fetch per URL is in flight.

Verified tokens are cached until they expire (``VerifiedTokens``): a token seen again is not decoded nor
its signature checked again. Only the signature and claims check is cached: what a service checks after it
(benefits: a disabled partner client, a rotated secret) runs on every request, a refused token is never
cached, an entry is never served at or past the token's ``exp``, and an entry stops counting as soon as the
key that verified it is no longer the one its issuer and ``kid`` resolve to (a JWKS refresh dropped it).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.config import CommonSettings
from shared.oidc import ClaimError, token_area, token_scopes
from shared.personal_data import write_private_file
from shared.problems import Problem

log = logging.getLogger("auth")

ALL_SCOPES = ("registry:read", "registry:write", "visits:write", "benefits:read", "benefits:evaluate",
              "credit", "settlement", "dci", "audit:read", "admin")
#: What a token signed with the partner key may carry; anything else is refused. ``dci``: the DCI Social
#: Registry API on the registry (search and subscribe), limited by the token's ``area`` claim.
PARTNER_TOKEN_SCOPES = frozenset({"credit", "settlement", "dci"})
UNAUTHORIZED = "https://jingzhun.dev/problems/unauthorized"
KEYS_UNAVAILABLE = "https://jingzhun.dev/problems/token-keys-unavailable"


class DevIssuerRefused(RuntimeError):
    """The development issuer was asked for in the production profile."""


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
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private_file(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def dev_key(settings: CommonSettings) -> rsa.RSAPrivateKey:
    """The development issuer's key; it does not exist in the production profile."""
    if settings.profile == "production":
        raise DevIssuerRefused(
            "the development token issuer is disabled in the production profile (JZ_PROFILE=production): "
            "get tokens from the external issuer named by JZ_JWT_JWKS_URL")
    return load_or_create_dev_key(settings.dev_key_file)


def mint_token(settings: CommonSettings, scopes: list[str] | str, *, subject: str = "dev-user",
               area: str | None = None, ttl_s: int = 12 * 3600, extra: dict | None = None) -> str:
    """A staff token from the development issuer (embedded profile only)."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    key = dev_key(settings)
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": subject,
              "scope": " ".join(scopes), "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex}
    if area:
        claims["area"] = area
    if extra:
        claims.update(extra)
    return jwt.encode(claims, key, algorithm="RS256")


# -- partner signing key ---------------------------------------------------------------------------

def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk(public_key) -> dict:
    """The JWK of a public key (RSA or EC P-256), without kid."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError("partner signing keys on EC must use P-256 (ES256)")
        numbers = public_key.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _b64url(_int_bytes(numbers.x, 32)),
                "y": _b64url(_int_bytes(numbers.y, 32))}
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "RSA", "e": _b64url(_int_bytes(numbers.e)), "n": _b64url(_int_bytes(numbers.n))}
    raise ValueError(f"unsupported key type {type(public_key).__name__}")


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638 thumbprint: the key id changes exactly when the key does."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class PartnerSigner:
    """Signs partner tokens with the partner key; publishes its public half as a JWKS."""

    def __init__(self, private_key, issuer: str, audience: str) -> None:
        self.private_key, self.issuer, self.audience = private_key, issuer, audience
        self.algorithm = "ES256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS256"
        self.public_key = private_key.public_key()
        jwk = public_jwk(self.public_key)
        self.kid = jwk_thumbprint(jwk)
        self.jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    @classmethod
    def from_settings(cls, settings) -> "PartnerSigner":
        """The configured key file, or (embedded profile only) one created under var/keys/."""
        path = getattr(settings, "partner_signing_key_file", None)
        if path is None:
            if settings.profile == "production":
                raise DevIssuerRefused("JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE must be set in the production profile")
            path = Path(settings.var_dir) / "keys" / "partner-signing.pem"
            if not path.exists():
                key = ec.generate_private_key(ec.SECP256R1())
                write_private_file(path, key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        return cls(key, settings.partner_token_issuer, settings.jwt_audience)

    def jwks(self) -> dict:
        return {"keys": [self.jwk]}

    def mint(self, scopes: list[str], *, subject: str, ttl_s: int, extra: dict | None = None,
             not_after: float | None = None) -> tuple[str, int]:
        """A partner token and its lifetime in seconds (cut at ``not_after``, a Unix time)."""
        bad = set(scopes) - PARTNER_TOKEN_SCOPES
        if bad:
            raise ValueError(f"not partner scopes: {', '.join(sorted(bad))}")
        now = int(time.time())
        exp = now + ttl_s if not_after is None else min(now + ttl_s, int(not_after))
        claims = {"iss": self.issuer, "aud": self.audience, "sub": subject, "scope": " ".join(scopes),
                  "iat": now, "exp": exp, "jti": uuid.uuid4().hex, "token_use": "partner", **(extra or {})}
        token = jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid})
        return token, exp - now


# -- JWKS cache --------------------------------------------------------------------------------------

class KeysUnavailable(Exception):
    pass


class JwksCache:
    """Keys of one JWKS URL: fetched with httpx.AsyncClient, cached ``ttl_s``, one fetch in flight.

    A cached key answers at once even when the cache is stale (a refresh starts in the background);
    only a kid that is not cached waits for a fetch, and unknown kids refresh at most once per
    ``min_refresh_s`` so junk tokens cannot make the service hammer the key server.
    """

    def __init__(self, url: str, *, ttl_s: float = 300.0, timeout_s: float = 5.0, min_refresh_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None, clock=time.monotonic) -> None:
        self.url, self.ttl_s, self.timeout_s, self.min_refresh_s = url, ttl_s, timeout_s, min_refresh_s
        self.transport, self.clock = transport, clock
        self.keys: dict[str | None, object] = {}
        self.fetched_at: float | None = None
        self.attempted_at: float | None = None
        self.fetches = 0
        self._inflight: asyncio.Task | None = None

    def cached(self, kid: str | None):
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    def _stale(self) -> bool:
        return self.fetched_at is None or self.clock() - self.fetched_at > self.ttl_s

    async def key_for(self, kid: str | None):
        key = self.cached(kid)
        if key is not None:
            if self._stale():
                self._refresh()  # serve the cached key now; the new set arrives in the background
            return key
        recently = self.attempted_at is not None and self.clock() - self.attempted_at < self.min_refresh_s
        if not recently or self._inflight is not None:
            try:
                await asyncio.shield(self._refresh())
            except KeysUnavailable:
                if not self.keys:
                    raise
        key = self.cached(kid)
        if key is None and not self.keys:
            raise KeysUnavailable(f"no keys from {self.url}")
        return key

    def _refresh(self) -> asyncio.Task:
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(self._done)
        return self._inflight

    def _done(self, task: asyncio.Task) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("JWKS fetch from %s failed: %s", self.url, task.exception())

    async def _fetch(self) -> None:
        self.attempted_at = self.clock()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout_s) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry.get("kid")] = jwt.PyJWK(entry).key
            except jwt.PyJWTError:
                continue  # a key type we cannot use; the others still work
        self.keys, self.fetched_at = keys, self.clock()


# -- verification ------------------------------------------------------------------------------------

def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, "Invalid token", detail, type_=UNAUTHORIZED)
    problem.headers = {"WWW-Authenticate": "Bearer"}
    return problem


def _token_refusal(exc: jwt.PyJWTError) -> str:
    """Why a token was refused, in words the message catalogue has: never PyJWT's own text, which for a
    garbage token is a Python decode message ("'utf-8' codec can't decode byte 0xb7")."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "The token has expired."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The token is not valid yet."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The token's signature does not verify."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The token is not meant for this service (audience)."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The token comes from another issuer."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token lacks the {exc.claim} claim."
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "The token is signed with an algorithm this service does not accept."
    if isinstance(exc, jwt.DecodeError):
        return "The token is malformed."
    return "The token is invalid."


def _keys_unavailable(detail: str) -> Problem:
    problem = Problem(503, "令牌密钥暂不可用 / Token keys unavailable",
                      f"The keys that verify this token could not be fetched ({detail}); retry shortly.",
                      type_=KEYS_UNAVAILABLE)
    problem.headers = {"Retry-After": "5"}
    return problem


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: float  # the token's exp (Unix time): never served at or after it
    kind: str
    kid: str | None
    key: object  # the key that verified it: a hit counts only while the same key is still the one in use


class VerifiedTokens:
    """Principals of tokens whose signature and claims verified, until their ``exp``; at most ``max_entries``
    (the least recently used go first). Keyed by the token's SHA-256, so no bearer token is kept in memory."""

    def __init__(self, max_entries: int = 10_000, clock=time.time) -> None:
        self.max_entries, self.clock = max_entries, clock
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> _Verified | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if self.clock() >= entry.expires_at:  # expired: PyJWT would refuse it now, so must we
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: bytes, entry: _Verified) -> None:
        if self.max_entries <= 0 or self.clock() >= entry.expires_at:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class TokenVerifier:
    """Verifies staff and partner tokens (see the module docstring for which key checks which)."""

    def __init__(self, settings: CommonSettings, *, partner_signer: PartnerSigner | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, cache_size: int = 10_000) -> None:
        self.settings = settings
        self.verified = VerifiedTokens(cache_size)
        self.partner_signer = partner_signer
        cache = dict(ttl_s=settings.jwks_cache_ttl_s, timeout_s=settings.jwks_fetch_timeout_s,
                     min_refresh_s=settings.jwks_refresh_min_interval_s, transport=transport)
        self.staff_jwks = JwksCache(settings.jwt_jwks_url, **cache) if settings.jwt_jwks_url else None
        self.partner_jwks = JwksCache(settings.resolved_partner_jwks_url(), **cache)
        # The sign-in provider trusted beside the staff issuer (embedded: deploy/oidc-dev), by its own JWKS.
        self.signin_jwks = (JwksCache(settings.oidc_jwks_url, **cache)
                            if settings.oidc_issuer and settings.oidc_jwks_url else None)
        self._public_key = None

    # Which key set, by the (unverified) issuer; the signature check that follows is what counts.
    def _route(self, token: str) -> tuple[str, str | None]:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _unauthorized(_token_refusal(exc))
        kind = "partner" if claims.get("iss") == self.settings.partner_token_issuer else "staff"
        if kind == "staff" and self.signin_jwks is not None and claims.get("iss") == self.settings.oidc_issuer:
            kind = "signin"
        return kind, header.get("kid")

    def _staff_static_key(self):
        if self._public_key is None:
            if self.settings.jwt_public_key_file:
                self._public_key = serialization.load_pem_public_key(
                    Path(self.settings.jwt_public_key_file).read_bytes())
            else:
                try:
                    self._public_key = dev_key(self.settings).public_key()
                except DevIssuerRefused as exc:
                    raise _unauthorized(str(exc))
        return self._public_key

    def _cached_key(self, kind: str, kid: str | None):
        """The key without any I/O, or None when it has to be fetched."""
        if kind == "partner":
            if self.partner_signer is not None:
                return self.partner_signer.public_key if kid in (None, self.partner_signer.kid) else False
            return self.partner_jwks.cached(kid)
        if kind == "signin":
            return self.signin_jwks.cached(kid)
        if self.staff_jwks is not None:
            return self.staff_jwks.cached(kid)
        return self._staff_static_key()

    async def _fetched_key(self, kind: str, kid: str | None):
        cache = {"partner": self.partner_jwks, "signin": self.signin_jwks}.get(kind, self.staff_jwks)
        try:
            key = await cache.key_for(kid)
        except KeysUnavailable as exc:
            raise _keys_unavailable(str(exc))
        if key is None:
            raise _unauthorized(f"unknown signing key id {kid!r}")
        return key

    def _check(self, token: str, kind: str, key) -> Principal:
        if key is False:
            raise _unauthorized("unknown signing key id")
        issuer = {"partner": self.settings.partner_token_issuer,
                  "signin": self.settings.oidc_issuer}.get(kind, self.settings.jwt_issuer)
        try:
            claims = jwt.decode(token, key, algorithms=["RS256", "ES256"], audience=self.settings.jwt_audience,
                                issuer=issuer, options={"require": ["exp", "sub", "iat"] if kind == "partner"
                                                        else ["exp", "sub"]})
        except jwt.PyJWTError as exc:
            raise _unauthorized(_token_refusal(exc))
        if kind != "partner":
            return self._staff_principal(claims)
        scope = claims.get("scope") or claims.get("scp") or ""
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
        if kind == "partner" and (not scopes <= PARTNER_TOKEN_SCOPES or not claims.get("client_id")):
            raise _unauthorized("a partner token carries partner scopes and a client_id only")
        return Principal(subject=str(claims["sub"]), scopes=scopes, area=claims.get("area"),
                         client_id=claims.get("client_id"), claims=claims)

    def _staff_principal(self, claims: dict) -> Principal:
        """A person or service of ours: scopes from the ``scope`` claim and the roles, area from its claim
        (shared/oidc.py); a token whose roles or area cannot be read is refused, never widened."""
        try:
            scopes, area = token_scopes(claims, self.settings), token_area(claims, self.settings)
        except ClaimError as exc:
            raise _unauthorized(str(exc))
        return Principal(subject=str(claims["sub"]), scopes=scopes, area=area,
                         client_id=claims.get("client_id"), claims=claims)

    def _remembered(self, cache_key: bytes) -> Principal | None:
        """The principal of a token verified before, if it has not expired and its key is still in use."""
        entry = self.verified.get(cache_key)
        if entry is None:
            return None
        try:
            current = self._cached_key(entry.kind, entry.kid)
        except Problem:
            current = None
        if current is not entry.key:  # the key set changed: verify again with whatever is there now
            self.verified.drop(cache_key)
            return None
        return entry.principal

    def _checked(self, token: str, cache_key: bytes, kind: str, kid: str | None, key) -> Principal:
        principal = self._check(token, kind, key)  # raises on refusal: nothing refused is cached
        exp = principal.claims.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            self.verified.put(cache_key, _Verified(principal, float(exp), kind, kid, key))
        return principal

    def verify(self, token: str) -> Principal:
        """Verify with keys at hand (no network); 503 problem if the key set is not loaded yet."""
        cache_key = VerifiedTokens.key(token)
        principal = self._remembered(cache_key)
        if principal is not None:
            return principal
        kind, kid = self._route(token)
        key = self._cached_key(kind, kid)
        if key is None:
            raise _keys_unavailable("key set not loaded yet")
        return self._checked(token, cache_key, kind, kid, key)

    async def averify(self, token: str) -> Principal:
        """Verify, fetching the issuer's JWKS first when the key is not cached."""
        cache_key = VerifiedTokens.key(token)
        principal = self._remembered(cache_key)
        if principal is not None:
            return principal
        kind, kid = self._route(token)
        key = self._cached_key(kind, kid)
        if key is None:
            key = await self._fetched_key(kind, kid)
        return self._checked(token, cache_key, kind, kid, key)


_bearer = HTTPBearer(auto_error=False)


async def current_principal(request: Request,
                            credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if credentials is None:
        problem = Problem(401, "Missing bearer token", "Send Authorization: Bearer <jwt>.", type_=UNAUTHORIZED)
        problem.headers = {"WWW-Authenticate": "Bearer"}
        raise problem
    return await request.app.state.token_verifier.averify(credentials.credentials)


def require_scopes(*scopes: str):
    """Dependency: the caller must hold every scope listed (``admin`` holds all)."""

    async def _check(principal: Principal = Depends(current_principal)) -> Principal:
        missing = [s for s in scopes if not principal.has(s)]
        if missing:
            raise Problem(403, "Insufficient scope", f"This call needs scope(s): {' '.join(missing)}.",
                          type_="https://jingzhun.dev/problems/forbidden", required_scopes=list(scopes))
        return principal

    return _check
