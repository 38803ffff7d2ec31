"""The development sign-in provider (``deploy/oidc-dev``) as a child of ``jingzhun run``.

The launcher starts it when Node and its packages are there and no external issuer is configured, points
the three services at it (issuer, JWKS, the docs' authorize and token URLs) and prints how to sign in.
Without it everything else runs as before: ``jingzhun token`` tokens are still trusted.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from shared.config import SERVICES

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "deploy" / "oidc-dev"
#: Settings that mean an external issuer is in charge: then the development provider is not started.
EXTERNAL_ISSUER_ENV = ("JZ_OIDC_ISSUER", "JZ_JWT_JWKS_URL")


def unavailable(port: int) -> str | None:
    """Why the provider cannot or should not start (one line for the log), or None when it can."""
    external = [name for name in EXTERNAL_ISSUER_ENV if os.environ.get(name)]
    if external:
        return f"staff sign-in: {external[0]} names an external issuer; the development provider is not started"
    if shutil.which("node") is None:
        return "staff sign-in unavailable: Node.js is not installed (jingzhun token still works)"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return ("staff sign-in unavailable: deploy/oidc-dev is not installed (run deploy/oidc-dev/install.sh; "
                "jingzhun token still works)")
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return f"staff sign-in unavailable: port {port} is taken (jingzhun run --signin-port N)"
    return None


def command() -> list[str]:
    return [shutil.which("node") or "node", str(PROVIDER_DIR / "server.js")]


def issuer(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def child_env(port: int, ports: dict[str, int], var_dir: Path, audience: str) -> dict[str, str]:
    """The provider's settings and the services' (both in one environment: neither reads the other's)."""
    iss = issuer(port)
    redirects = [f"http://{host}:{ports[service]}/docs/oauth2-redirect"
                 for service in SERVICES for host in ("127.0.0.1", "localhost")]
    return {
        "OIDC_DEV_PORT": str(port), "OIDC_DEV_ISSUER": iss, "OIDC_DEV_AUDIENCE": audience,
        "OIDC_DEV_REDIRECT_URIS": ",".join(redirects),
        # Kept under var/ so a restarted provider signs with the same key and earlier sign-ins stay valid.
        "OIDC_DEV_KEYS_FILE": str(Path(var_dir).resolve() / "keys" / "oidc-dev-jwks.json"),
        "JZ_OIDC_ISSUER": iss, "JZ_OIDC_JWKS_URL": f"{iss}/jwks",
        "JZ_OIDC_AUTHORIZATION_URL": f"{iss}/auth", "JZ_OIDC_TOKEN_URL": f"{iss}/token",
    }


def banner_lines(port: int) -> list[str]:
    directory = json.loads((PROVIDER_DIR / "accounts.json").read_text(encoding="utf-8"))
    accounts = ", ".join(f"{name} ({'/'.join(account['roles'])}{', ' + account['area'] if account.get('area') else ''})"
                         for name, account in directory["accounts"].items())
    return [f"sign in:  /docs → Authorize → staffSignIn (provider {issuer(port)}); password "
            f"{directory['password']!r} for {accounts}"]
