"""Several worker processes per service (issue 15, both cores): the setting, the command, the consumers' shares,
SQLite kept at one, and the deployment files that use it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.config import SERVICES, RegistrySettings
from shared.launcher import LaunchConfig, configured_workers, service_command, worker_share

ROOT = Path(__file__).resolve().parents[2]


def test_workers_is_a_service_setting():
    assert RegistrySettings().workers == 1
    assert RegistrySettings(_env_file=None, workers=3).workers == 3
    with pytest.raises(ValueError):
        RegistrySettings(workers=0)


def test_one_worker_is_plain_uvicorn_and_more_is_the_serve_command(monkeypatch):
    monkeypatch.delenv("JZ_BENEFITS_WORKERS", raising=False)
    one = service_command("benefits", 8002)
    assert one[1:3] == ["-m", "uvicorn"] and "--workers" not in one
    monkeypatch.setenv("JZ_BENEFITS_WORKERS", "3")
    three = service_command("benefits", 8002, "0.0.0.0")
    assert three[1:5] == ["-m", "shared.launcher", "serve", "benefits"]
    assert three[three.index("--workers") + 1] == "3" and three[three.index("--host") + 1] == "0.0.0.0"
    assert service_command("benefits", 8002, workers=1) == one


def test_worker_shares_split_a_member_exactly():
    for member in ("0/1", "0/3", "2/3", "1/2"):
        a, b = (int(x) for x in member.split("/"))
        mine = {p for p in range(240) if p % b == a}
        for workers in (1, 2, 3, 4):
            shares = []
            for index in range(workers):
                c, d = (int(x) for x in worker_share(member, index, workers).split("/"))
                shares.append({p for p in range(240) if p % d == c})
            assert set().union(*shares) == mine, (member, workers)
            assert sum(len(s) for s in shares) == len(mine), (member, workers)  # disjoint


def test_the_launcher_keeps_sqlite_at_one_worker(tmp_path):
    env = {"JZ_REGISTRY_WORKERS": "2", "JZ_BENEFITS_WORKERS": "2"}
    config = LaunchConfig(var_dir=tmp_path, extra_env=env,
                          database_urls={"registry": "postgresql+asyncpg://u@db/jz_registry"})
    assert config.workers("registry") == 2
    assert config.workers("benefits") == 1  # SQLite: writers take turns on one file lock
    assert config.workers("audit") == 1
    assert configured_workers("registry", {"JZ_REGISTRY_WORKERS": "4"}) == 4
    assert configured_workers("registry", {}) == 1


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]


def _k8s() -> list[dict]:
    return [doc for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_compose_runs_each_service_as_workers():
    services = _compose()
    for svc in SERVICES:
        command = services[svc]["command"]
        assert command[:5] == ["python", "-m", "shared.launcher", "serve", svc], svc
        workers = services[svc]["environment"][f"JZ_{svc.upper()}_WORKERS"]
        assert re.fullmatch(r"\$\{JZ_%s_WORKERS:-\d+\}" % svc.upper(), workers), workers


def test_k8s_apis_serve_without_consumers_and_consumers_scale_with_partitions():
    docs = _k8s()
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "jingzhun-settings")
    partitions = int(config["data"]["JZ_TOPIC_PARTITIONS"])
    for svc in SERVICES:
        api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == svc)
        env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env[f"JZ_{svc.upper()}_RUN_CONSUMER"]["value"] == "false", svc
        assert int(env[f"JZ_{svc.upper()}_WORKERS"]["value"]) >= 2, svc

        consumer = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == f"{svc}-consumer")
        replicas = consumer["spec"]["replicas"]
        container = consumer["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert f"JZ_{svc.upper()}_RUN_CONSUMER" not in env or env[f"JZ_{svc.upper()}_RUN_CONSUMER"]["value"] == "true"
        assert env[f"JZ_{svc.upper()}_CONSUMER_MEMBER"]["value"] == f"$(POD_INDEX)/{replicas}", svc
        assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
        # every consumer process gets at least one partition of each topic
        assert replicas * int(env[f"JZ_{svc.upper()}_WORKERS"]["value"]) <= partitions, svc
        assert container["command"][:5] == ["python", "-m", "shared.launcher", "serve", svc]
        assert consumer["spec"]["serviceName"] == f"{svc}-consumer"
        headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == f"{svc}-consumer")
        assert headless["spec"]["clusterIP"] == "None"
        # the API's load-balanced Service does not select consumer pods
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == svc)
        labels = consumer["spec"]["template"]["metadata"]["labels"]
        assert not set(service["spec"]["selector"].items()) <= set(labels.items()), svc
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "consumers.yaml" in kustomization["resources"]


def test_connections_the_workers_accept_send_at_once():
    """uvicorn wraps an inherited --fd as AF_UNIX, so asyncio leaves Nagle on for what it accepts; the listening
    socket carries TCP_NODELAY to every accepted connection instead (without it: ~40 ms per request)."""
    import socket

    from shared.launcher import listening_socket
    listener = listening_socket("127.0.0.1", 0)
    client = socket.create_connection(listener.getsockname())
    try:
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert listener.get_inheritable()
    finally:
        client.close()
        listener.close()
