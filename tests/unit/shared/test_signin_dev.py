"""The launcher's development sign-in provider: what the services are told, and when it is not started."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from shared import signin_dev
from shared.launcher import LaunchConfig


def test_services_are_pointed_at_the_provider_and_its_redirects_at_their_docs(tmp_path):
    config = LaunchConfig(var_dir=tmp_path, ports={"registry": 18001, "benefits": 18002, "audit": 18003},
                          signin_port=18009)
    env = config.child_env()
    assert env["JZ_OIDC_ISSUER"] == env["OIDC_DEV_ISSUER"] == "http://127.0.0.1:18009"
    assert env["JZ_OIDC_JWKS_URL"] == "http://127.0.0.1:18009/jwks"
    assert (env["JZ_OIDC_AUTHORIZATION_URL"], env["JZ_OIDC_TOKEN_URL"]) == ("http://127.0.0.1:18009/auth",
                                                                            "http://127.0.0.1:18009/token")
    assert env["OIDC_DEV_AUDIENCE"] == "jingzhun"
    assert env["OIDC_DEV_REDIRECT_URIS"].split(",") == [
        f"http://{host}:{port}/docs/oauth2-redirect" for port in (18001, 18002, 18003)
        for host in ("127.0.0.1", "localhost")]
    assert Path(env["OIDC_DEV_KEYS_FILE"]).parent == tmp_path.resolve() / "keys"


def test_without_a_signin_port_the_services_get_no_signin_settings(tmp_path):
    env = LaunchConfig(var_dir=tmp_path).child_env()
    assert not [name for name in env if name.startswith(("JZ_OIDC_", "OIDC_DEV_")) and name not in os.environ]


def test_an_external_issuer_or_a_taken_port_means_no_development_provider(monkeypatch):
    monkeypatch.setenv("JZ_JWT_JWKS_URL", "https://keycloak.example/realms/jingzhun/protocol/openid-connect/certs")
    assert "JZ_JWT_JWKS_URL names an external issuer" in signin_dev.unavailable(18009)
    monkeypatch.delenv("JZ_JWT_JWKS_URL")
    monkeypatch.delenv("JZ_OIDC_ISSUER", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        reason = signin_dev.unavailable(taken.getsockname()[1])
    assert reason is not None and ("is taken" in reason or "not installed" in reason)


def test_the_banner_names_every_demo_account_and_the_password():
    [line] = signin_dev.banner_lines(18009)
    assert "http://127.0.0.1:18009" in line and "'jingzhun'" in line
    for account in ("county-office (office, 360703)", "township-office (office, 360703102)", "cadre-zhong (cadre)",
                    "supervisor (auditor)", "admin (admin)"):
        assert account in line
