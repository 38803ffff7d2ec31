"""What a staff token from an OpenID Connect provider means here: its roles and area, mapped to scopes.

People sign in at an external provider (Keycloak in production, ``deploy/oidc-dev`` in development). Their
access tokens say who they are and which roles and area the provider gives them; which API scopes a role
holds is this system's decision, kept in one table (``JZ_OIDC_ROLE_SCOPES``), so a provider administrator
grants roles, never ``admin`` by accident of a scope name. An explicit ``scope`` claim (development tokens,
client-credentials tokens) keeps counting beside the roles.

Also the OpenAPI side of sign-in: the OAuth2 authorization-code scheme the docs' Authorize button uses.
"""
from __future__ import annotations

import re

from shared.config import CommonSettings

#: The OpenAPI security scheme name of the sign-in (authorization code + PKCE) beside ``HTTPBearer``.
SIGNIN_SCHEME = "staffSignIn"
_AREA = re.compile(r"^\d{2,12}$")  # an administrative code prefix: province (2 digits) down to village (12)


class ClaimError(ValueError):
    """A token's roles or area cannot be read safely (the token is refused, never widened)."""


def claim_at(claims: dict, path: str):
    """The value at a dotted path (``realm_access.roles``); a claim whose own name has dots wins."""
    if path in claims:
        return claims[path]
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def token_roles(claims: dict, settings: CommonSettings) -> set[str]:
    roles: set[str] = set()
    for path in settings.oidc_roles_claims:
        value = claim_at(claims, path)
        if value is None:
            continue
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
            raise ClaimError(f"claim {path!r} must be a list of role names")
        roles.update(value)
    return roles


def token_scopes(claims: dict, settings: CommonSettings) -> frozenset[str]:
    """The explicit ``scope`` (or ``scp``) claim plus the scopes of every role the token carries."""
    explicit = claims.get("scope") or claims.get("scp") or ""
    scopes = set(explicit.split() if isinstance(explicit, str) else explicit)
    for role in token_roles(claims, settings):
        scopes.update(settings.oidc_role_scopes.get(role, ()))  # roles of other applications give nothing here
    return frozenset(scopes)


def token_area(claims: dict, settings: CommonSettings) -> str | None:
    """The administrative code prefix the person is limited to, or None for no limit.

    Keycloak sends a user attribute as a list when the mapper is multivalued and may send a number: one
    value is the area; several, or something that is not a code, refuse the token rather than guess (a
    wrong guess would widen what the person sees).
    """
    value = claim_at(claims, settings.oidc_area_claim)
    if isinstance(value, list):
        if len(value) > 1:
            raise ClaimError(f"claim {settings.oidc_area_claim!r} names {len(value)} areas; one person has one")
        value = value[0] if value else None
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _AREA.match(value):
        raise ClaimError(f"claim {settings.oidc_area_claim!r} is not an administrative code: {value!r}")
    return value


def add_signin_scheme(schema: dict, settings: CommonSettings) -> dict:
    """Declare the authorization-code flow beside the bearer scheme on every operation that takes a token.

    Without the configured URLs nothing is added: a sign-in button that leads nowhere is worse than none.
    """
    if not (settings.oidc_authorization_url and settings.oidc_token_url):
        return schema
    scopes = {scope: "OpenID Connect" if scope == "openid" else f"{scope} (sign-in)"
              for scope in settings.oidc_docs_scopes.split()}
    components = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    components[SIGNIN_SCHEME] = {
        "type": "oauth2",
        "description": "Staff sign-in (OpenID Connect, authorization code with PKCE, client "
                       f"`{settings.oidc_client_id}`). Your roles and area decide what you may do.",
        "flows": {"authorizationCode": {"authorizationUrl": settings.oidc_authorization_url,
                                        "tokenUrl": settings.oidc_token_url, "scopes": scopes}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            security = operation.get("security") if isinstance(operation, dict) else None
            if security and any("HTTPBearer" in requirement for requirement in security) \
                    and not any(SIGNIN_SCHEME in requirement for requirement in security):
                security.append({SIGNIN_SCHEME: []})
    return schema


def swagger_init_oauth(settings: CommonSettings) -> dict:
    """Swagger UI's ``initOAuth``: the public docs client, PKCE on (no secret can live in a web page)."""
    return {"clientId": settings.oidc_client_id, "usePkceWithAuthorizationCodeGrant": True,
            "scopes": settings.oidc_docs_scopes, "appName": "Jingzhun"}
