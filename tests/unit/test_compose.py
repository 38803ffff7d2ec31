"""The deployment files are checked by parsing them: no Docker engine runs in CI.

docker-compose.yml, deploy/Dockerfile and deploy/k8s/*.yaml must only use settings that
shared.config really reads, give every long-running process a health check, start the
apps only on a migrated schema, and run Kafka in KRaft mode.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from shared.config import DEFAULT_PORTS, SERVICES, TOPICS, CommonSettings, all_env_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"

JZ_NAME = re.compile(r"\bJZ_[A-Z0-9_]+\b")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_names() -> set[str]:
    return all_env_names()


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def resolve(value) -> str:
    """Compose interpolation with defaults only (what `docker compose config` gives with no .env)."""
    text = str(value)
    text = INTERPOLATION.sub(lambda m: m.group(2) or "", text.replace("$$", "\0"))
    return text.replace("\0", "$")


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def uses_app_image(service: dict) -> bool:
    return "JZ_PROFILE" in environment(service)


def published_container_ports(service: dict) -> dict[int, int]:
    """container port -> host port."""
    published = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published[int(port["target"])] = int(port.get("published", port["target"]))
        else:
            parts = resolve(port).split("/")[0].split(":")
            published[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return published


def test_compose_parses_and_has_the_whole_stack(services):
    expected = {"postgres", "kafka", "kafka-init", "event-keys", "migrate", "relay", *SERVICES}
    assert expected <= set(services), f"missing: {expected - set(services)}"


# (a) -------------------------------------------------------------------------------
def test_every_jz_variable_in_compose_is_a_real_setting(services, env_names):
    unknown = {(name, key) for name, svc in services.items()
               for key in environment(svc) if key.startswith("JZ_") and key not in env_names}
    assert not unknown, f"settings that shared.config does not read: {sorted(unknown)}"


def test_every_jz_name_anywhere_in_compose_is_a_real_setting(env_names):
    # Also catches ${JZ_...} interpolations and names in commands or comments.
    unknown = set(JZ_NAME.findall(COMPOSE_FILE.read_text(encoding="utf-8"))) - env_names
    assert not unknown, f"unknown JZ_ names in docker-compose.yml: {sorted(unknown)}"


def test_app_containers_run_the_production_profile(services):
    for name in ("migrate", "relay", *SERVICES):
        env = environment(services[name])
        assert env.get("JZ_PROFILE") == "production", name
        assert env.get("JZ_KAFKA_BOOTSTRAP") == "kafka:9092", name
        for key in ("JZ_JWT_JWKS_URL", "JZ_JWT_ISSUER", "JZ_JWT_AUDIENCE"):
            assert str(env.get(key, "")).startswith("${" + key), f"{name}: {key} must be overridable"
            assert resolve(env[key]), f"{name}: {key} needs a default"


def test_each_process_gets_the_database_urls_it_uses(services):
    needs = {"migrate": SERVICES, "relay": ("registry", "benefits"), **{s: (s,) for s in SERVICES}}
    for name, dbs in needs.items():
        env = environment(services[name])
        for db in dbs:
            url = resolve(env.get(f"JZ_{db.upper()}_DATABASE_URL", ""))
            assert url.startswith("postgresql+asyncpg://jingzhun:"), f"{name}: {db} url {url!r}"
            assert url.endswith(f"@postgres:5432/jz_{db}"), f"{name}: {db} url {url!r}"
    for svc in SERVICES:
        assert environment(services[svc]).get(f"JZ_{svc.upper()}_HOST") == "0.0.0.0"


def test_registry_reaches_benefits_by_service_name(services):
    env = environment(services["registry"])
    assert env["JZ_REGISTRY_BENEFITS_URL"] == f"http://benefits:{DEFAULT_PORTS['benefits']}"


# (b) -------------------------------------------------------------------------------
def test_long_running_services_have_a_healthcheck(services):
    for name, svc in services.items():
        if is_one_shot(svc):
            continue
        check = svc.get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name} has no healthcheck test"


def test_one_shot_jobs_do_not_restart(services):
    for name in ("migrate", "kafka-init"):
        # Quoted in YAML: a bare `no` would parse as false.
        assert services[name].get("restart") == "no", name


def test_app_healthchecks_probe_their_own_healthz(services):
    for svc in SERVICES:
        test = " ".join(services[svc]["healthcheck"]["test"])
        assert "urllib" in test and f"127.0.0.1:{DEFAULT_PORTS[svc]}/healthz" in test, svc


def test_postgres_and_kafka_healthchecks(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    kafka_test = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "kafka-topics.sh" in kafka_test and "--bootstrap-server localhost:9092" in kafka_test
    assert "--list" in kafka_test


# (c) -------------------------------------------------------------------------------
def test_app_services_build_from_deploy_dockerfile(services):
    app_services = [name for name, svc in services.items() if uses_app_image(svc)]
    assert set(app_services) == {"migrate", "relay", "event-keys", *SERVICES}
    images = set()
    for name in app_services:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} must build from deploy/Dockerfile"
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.resolve() == DOCKERFILE.resolve(), name
        assert dockerfile.is_file(), dockerfile
        images.add(services[name].get("image"))
    assert len(images) == 1, f"one image for every app container, got {images}"


def test_postgres_init_script_is_mounted_and_creates_every_database(services):
    volumes = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert volumes, "init script not mounted"
    script = ROOT / volumes[0].split(":")[0]
    assert script == ROOT / "deploy/postgres/init-databases.sql" or script.resolve() == (
        ROOT / "deploy/postgres/init-databases.sql").resolve()
    sql = script.read_text(encoding="utf-8")
    for svc in SERVICES:
        assert re.search(rf"CREATE DATABASE\s+jz_{svc}\b", sql), svc
    assert services["postgres"]["image"].startswith("postgres:16")


# (d) -------------------------------------------------------------------------------
def test_apps_publish_their_ports(services):
    for svc in SERVICES:
        port = DEFAULT_PORTS[svc]
        assert published_container_ports(services[svc]).get(port) == port, svc
        cmd = command(services[svc])
        assert cmd[cmd.index("--port") + 1] == str(port), svc
        assert cmd[cmd.index("--host") + 1] == "0.0.0.0", svc
        assert int(environment(services[svc]).get(f"JZ_{svc.upper()}_PORT", port)) == port


def test_commands_point_at_real_entry_points(services):
    from jingzhun_cli.main import app as cli

    cli_commands = {c.name or c.callback.__name__ for c in cli.registered_commands}
    for name, svc in services.items():
        cmd = command(svc)
        if cmd[:1] == ["jingzhun"]:
            assert cmd[1] in cli_commands, f"{name}: no CLI command {cmd[1]!r}"
        if "uvicorn" in cmd:
            assert "--factory" in cmd, name
            module, _, factory = next(c for c in cmd if c.startswith("services.")).partition(":")
            source = ROOT / (module.replace(".", "/") + ".py")
            assert source.is_file() and f"def {factory}(" in source.read_text(encoding="utf-8"), name
    assert command(services["migrate"])[:2] == ["jingzhun", "migrate"]
    assert command(services["relay"])[:2] == ["jingzhun", "relay"]


# (e) -------------------------------------------------------------------------------
def test_kafka_runs_in_kraft_mode(services):
    assert not any("zookeeper" in name or "zookeeper" in str(svc.get("image", ""))
                   for name, svc in services.items())
    env = {k: str(v) for k, v in environment(services["kafka"]).items()}
    assert not any("ZOOKEEPER" in key for key in env)
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@kafka:")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert "SASL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert resolve(env["CLUSTER_ID"])


def test_kafka_init_creates_every_topic_and_dlq(services):
    init = services["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = " ".join(command(init))
    for topic in TOPICS:
        assert topic in script, topic
    assert ".dlq" in script and "--if-not-exists" in script
    partitions = resolve(environment(init)["TOPIC_PARTITIONS"])
    assert int(partitions) == CommonSettings.model_fields["topic_partitions"].default
    for name in ("relay", *SERVICES):
        assert resolve(environment(services[name])["JZ_TOPIC_PARTITIONS"]) == partitions


# (f) -------------------------------------------------------------------------------
def test_apps_start_after_migrations_and_kafka(services):
    for name in ("relay", *SERVICES):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka-init"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_dependency_exists_with_a_valid_condition(services):
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        for dep, spec in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec.get("condition", "service_started")
            assert condition in valid, (name, dep, condition)
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
            if condition == "service_completed_successfully":
                assert is_one_shot(services[dep]), f"{dep} is not a one-shot job"


# (g) -------------------------------------------------------------------------------
def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


def test_k8s_manifests_parse_and_cover_every_app():
    docs = k8s_documents()
    kinds = {(doc["kind"], doc.get("metadata", {}).get("name")) for _, doc in docs}
    for svc in SERVICES:
        assert ("Deployment", svc) in kinds and ("Service", svc) in kinds, svc
    assert any(kind == "Job" for kind, _ in kinds)
    assert any(kind == "ConfigMap" for kind, _ in kinds)
    for file, doc in docs:
        assert "apiVersion" in doc and "kind" in doc, file


def test_k8s_jz_names_are_real_settings(env_names):
    names: set[str] = set()
    for _, doc in k8s_documents():
        if doc["kind"] == "ConfigMap":
            names |= {k for k in doc.get("data", {}) if k.startswith("JZ_")}
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            names |= {e["name"] for e in container.get("env", []) if e["name"].startswith("JZ_")}
    assert names, "no JZ_ settings found in deploy/k8s"
    unknown = names - env_names
    assert not unknown, f"k8s uses settings shared.config does not read: {sorted(unknown)}"
    raw = "".join(p.read_text(encoding="utf-8") for p in K8S_DIR.glob("*.yaml"))
    assert not set(JZ_NAME.findall(raw)) - env_names


def test_k8s_containers_run_as_non_root():
    for file, doc in k8s_documents():
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if pod:
            assert pod.get("securityContext", {}).get("runAsNonRoot") is True, file
            assert pod["securityContext"].get("runAsUser", 0) != 0, file



def k8s_container(name: str) -> dict:
    deployment = next(doc for _, doc in k8s_documents() if doc["kind"] == "Deployment"
                      and doc["metadata"]["name"] == name)
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_k8s_probes_mean_what_the_services_serve():
    # liveness = /healthz (the process serves: restart if not); readiness = /readyz (dependencies and, for
    # benefits and audit, the consumer: out of the Service, never restarted); startup gives slow starts time.
    for svc in SERVICES:
        container = k8s_container(svc)
        port = next(p for p in container["ports"] if p["name"] == "http")
        assert port["containerPort"] == DEFAULT_PORTS[svc], svc
        probes = {kind: container.get(kind) for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert all(probes.values()), (svc, probes)
        assert probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, svc
        assert probes["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, svc
        assert probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, svc
        startup_s = probes["startupProbe"]["periodSeconds"] * probes["startupProbe"]["failureThreshold"]
        assert startup_s >= 60, svc  # a slow start (cold database, policy packs) is not a restart loop
        live = probes["livenessProbe"]
        # /readyz may wait on the broker (1 s) and the consumer's status (2 s): its timeout must cover that
        assert probes["readinessProbe"].get("timeoutSeconds", 1) >= 4, svc
        assert live.get("periodSeconds", 10) * live.get("failureThreshold", 3) >= 20, svc


def test_k8s_relay_probes_check_the_heartbeat_the_relay_touches(tmp_path):
    import subprocess
    import sys
    import time
    container = k8s_container("relay")
    heartbeat = next(e["value"] for e in container["env"] if e["name"] == "JZ_RELAY_HEARTBEAT_FILE")
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(heartbeat).parent) in mounted  # writable under readOnlyRootFilesystem
    assert CommonSettings(relay_heartbeat_file=heartbeat).relay_heartbeat_file == Path(heartbeat)
    for kind in ("startupProbe", "livenessProbe"):
        probe = container[kind]
        assert not {"httpGet", "tcpSocket"} & set(probe)  # the relay has no port
        command = probe["exec"]["command"]
        assert command[:2] == ["python", "-c"] and f"'{heartbeat}'" in command[2]

        def verdict(path: Path) -> int:  # the probe as the kubelet runs it, aimed at a file of ours
            return subprocess.run([sys.executable, "-c", command[2].replace(heartbeat, str(path))],
                                  capture_output=True, timeout=10).returncode

        beat = tmp_path / f"{kind}.heartbeat"
        assert verdict(beat) != 0  # no beat yet
        beat.touch()
        assert verdict(beat) == 0  # the relay beats every 5 s
        os.utime(beat, (time.time() - 120, time.time() - 120))
        assert verdict(beat) != 0  # a loop that stopped turning
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


# (h) -------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_runs_as_non_root():
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users, "Dockerfile has no USER line"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0"), final_user


def test_dockerfile_is_multi_stage_and_installs_the_project():
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "expected a multi-stage build"
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for keyword, rest in instructions
            if keyword == "ARG" and "=" in rest}
    assert all("python:3.11-slim" in re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), s)
               for s in stages)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|&|$)", runs), "project not installed with `pip install .`"
    exposed = {p for keyword, rest in instructions if keyword == "EXPOSE" for p in rest.split()}
    assert {str(p) for p in DEFAULT_PORTS.values()} <= exposed
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert cmd and cmd[-1] == '["jingzhun", "--help"]'
    assert ("HEALTHCHECK", "NONE") in instructions


def test_dockerfile_env_uses_real_settings(env_names):
    assert not set(JZ_NAME.findall(DOCKERFILE.read_text(encoding="utf-8"))) - env_names


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    for entry in (".venv", "var", ".git", ".pytest_cache", ".hypothesis"):
        assert entry in ignored, entry


def test_processes_that_hash_id_numbers_get_the_identity_key_from_outside(services):
    # Registry (publishing), benefits (look-ups) and the migration (benefits 0006) share one key; in
    # production it is never generated, so compose and k8s must pass it from a secret / .env.
    for name in ("migrate", "registry", "benefits"):
        value = str(environment(services[name]).get("JZ_IDENTITY_KEY", "missing"))
        assert value.startswith("${JZ_IDENTITY_KEY"), f"{name}: JZ_IDENTITY_KEY must come from the environment"
        assert not resolve(value), f"{name}: no default identity key may be written in the file"
    k8s = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] in ("Deployment", "Job")}
    for name, doc in k8s.items():
        if name not in ("registry", "benefits") and doc["kind"] != "Job":
            continue
        env = {e["name"]: e for c in doc["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        if doc["kind"] == "Job" and "JZ_BENEFITS_DATABASE_URL" not in env:
            continue
        assert env["JZ_IDENTITY_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "jingzhun-identity", name


# (i) Kafka security: SASL/SCRAM everywhere, ACLs per principal, each process its own credentials ----
KAFKA_SECURITY_SCRIPT = ROOT / "deploy" / "kafka" / "security.sh"
ACL_LINE = re.compile(r"^\s*acl (\w+) (Read|Write|Describe) (topic|group) (\S+)$", re.M)
USER_LINE = re.compile(r"^user (\w+) ", re.M)


def expected_acls() -> set[tuple[str, str, str, str]]:
    """Who may do what, from the event contract: a producer writes only its own topics, a consumer
    reads (and writes the .dlq twin of) what it consumes, and reads with its own group; everyone reads and
    may write the broker epoch markers, and a relay may see what the groups consuming its topics committed."""
    from shared.broker_epoch import EPOCH_TOPIC
    from shared.config import CommonSettings, TOPIC_ACCESS, TOPIC_BENEFITS, TOPIC_REGISTRY, dlq_topic
    # registry also writes the access records of DCI partner searches (docs/dci.md)
    produces = {"registry": [TOPIC_REGISTRY, TOPIC_ACCESS], "benefits": [TOPIC_BENEFITS, TOPIC_ACCESS], "audit": []}
    # registry consumes benefits' topic for monitoring.risk_detected (automatic leads, docs/monitoring.md) and
    # its own for DCI subscriptions (group registry-dci)
    consumes = {"registry": [TOPIC_BENEFITS, TOPIC_REGISTRY], "benefits": [TOPIC_REGISTRY], "audit": list(TOPICS)}
    extra_groups = {"registry": ["registry-dci"]}
    acls = set()
    for principal in SERVICES:
        acls |= {(principal, "Write", "topic", t) for t in produces[principal]}
        for topic in consumes[principal]:
            acls |= {(principal, "Read", "topic", topic), (principal, "Write", "topic", dlq_topic(topic))}
        if consumes[principal]:
            acls.add((principal, "Read", "group", principal))
        acls |= {(principal, "Read", "group", group) for group in extra_groups.get(principal, [])}
        acls |= {(principal, "Read", "topic", EPOCH_TOPIC), (principal, "Write", "topic", EPOCH_TOPIC)}
        for topic in produces[principal]:
            acls |= {(principal, "Describe", "group", group)
                     for group in CommonSettings().topic_consumer_groups[topic] if group != principal}
    return acls


def kafka_sasl_names(service: str) -> tuple[str, str]:
    prefix = f"JZ_{service.upper()}_KAFKA_SASL_"
    return prefix + "USERNAME", prefix + "PASSWORD"


def test_kafka_listeners_all_authenticate_and_acls_deny_by_default(services):
    env = {k: str(v) for k, v in environment(services["kafka"]).items()}
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = [item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")]
    assert set(listeners) == set(protocols), "every listener has a protocol"
    assert all(p.startswith("SASL_") for p in protocols.values()), protocols  # nothing anonymous
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    for listener in listeners:  # each listener has a login module for each mechanism it offers
        mechanisms = (env.get(f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS")
                      or env["KAFKA_SASL_ENABLED_MECHANISMS"]).split(",")
        for mechanism in mechanisms:
            key = f"KAFKA_LISTENER_NAME_{listener}_{mechanism.replace('-', '___')}_SASL_JAAS_CONFIG"
            assert "LoginModule required" in env.get(key, ""), key
    assert "${KAFKA_ADMIN_PASSWORD:?" in env["KAFKA_LISTENER_NAME_SASL_PLAIN_SASL_JAAS_CONFIG"]
    assert "--command-config" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_acl_set_per_principal_is_exactly_the_contract():
    script = KAFKA_SECURITY_SCRIPT.read_text(encoding="utf-8")
    acls = set(ACL_LINE.findall(script))
    assert acls == expected_acls(), (acls ^ expected_acls())
    assert set(USER_LINE.findall(script)) == set(SERVICES)
    writers = {(p, name) for p, op, kind, name in acls
               if op == "Write" and not name.endswith(".dlq") and name != "jz.epochs.v1"}
    assert writers == {("registry", "jz.registry.v1"), ("registry", "jz.access.v1"), ("benefits", "jz.benefits.v1"),
                       ("benefits", "jz.access.v1")}
    assert "--allow-principal" in script and "--deny-principal" not in script


def test_kafka_init_creates_users_and_acls_with_admin_credentials(services):
    init = services["kafka-init"]
    script = " ".join(command(init))
    assert "kafka-security.sh" in script and "--command-config" in script
    mounts = [v for v in init.get("volumes", []) if "security.sh" in v]
    assert mounts and (ROOT / mounts[0].split(":")[0]).resolve() == KAFKA_SECURITY_SCRIPT.resolve()
    env = environment(init)
    for name in ("KAFKA_ADMIN_PASSWORD", *(f"KAFKA_{s.upper()}_PASSWORD" for s in SERVICES)):
        assert str(env[name]).startswith("${" + name + ":?"), name  # from .env, never a default
    assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_each_process_logs_in_to_kafka_as_its_own_principal(services, monkeypatch):
    from shared.bus import kafka_client_options
    from shared.config import service_settings
    principals = {"relay": ("registry", "benefits"), "benefits": ("benefits",), "audit": ("audit",),
                  "registry": ("registry",)}  # the registry API consumes benefits' monitoring.risk_detected
    acl_principals = {p for p, *_ in expected_acls()}
    init_env = environment(services["kafka-init"])
    for name, identities in principals.items():
        env = environment(services[name])
        assert env["JZ_KAFKA_SECURITY_PROTOCOL"].startswith("SASL_") and env["JZ_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        for other in set(SERVICES) - set(identities):
            assert kafka_sasl_names(other)[0] not in env, f"{name} holds {other}'s Kafka credentials"
        for identity in identities:
            user_name, password_name = kafka_sasl_names(identity)
            assert env[user_name] == identity and identity in acl_principals
            assert env[password_name] == init_env[f"KAFKA_{identity.upper()}_PASSWORD"]  # the user kafka-init made
            for key in list(os.environ):
                if key.startswith("JZ_"):
                    monkeypatch.delenv(key)
            for key, value in env.items():
                monkeypatch.setenv(key, resolve(value) or "secret")
            options = kafka_client_options(service_settings(identity))
            assert options["security_protocol"] == "SASL_PLAINTEXT" and options["sasl_mechanism"] == "SCRAM-SHA-512"
            assert options["sasl_plain_username"] == identity


def test_k8s_processes_have_kafka_credentials_and_the_acl_job():
    docs = k8s_documents()
    config = next(doc for _, doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "jingzhun-settings")
    assert config["data"]["JZ_KAFKA_SECURITY_PROTOCOL"] in ("SASL_SSL", "SASL_PLAINTEXT")
    assert config["data"]["JZ_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    principals = {"relay": ("registry", "benefits"), "benefits": ("benefits",), "audit": ("audit",),
                  "registry": ("registry",)}
    for _, doc in docs:
        if doc["kind"] != "Deployment" or doc["metadata"]["name"] not in principals:
            continue
        env = {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        identities = principals[doc["metadata"]["name"]]
        for service in SERVICES:
            user_name, password_name = kafka_sasl_names(service)
            if service in identities:
                assert env[user_name]["value"] == service
                assert env[password_name]["valueFrom"]["secretKeyRef"] == {"name": "jingzhun-kafka", "key": service}
            else:
                assert user_name not in env and password_name not in env, doc["metadata"]["name"]
    security = next(doc for _, doc in docs if doc["kind"] == "ConfigMap"
                    and doc["metadata"]["name"] == "jingzhun-kafka-security")
    assert security["data"]["security.sh"] == KAFKA_SECURITY_SCRIPT.read_text(encoding="utf-8")
    job = next(doc for _, doc in docs if doc["kind"] == "Job" and doc["metadata"]["name"] == "kafka-security")
    assert "security.sh" in " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "kafka-security.yaml" in kustomization["resources"]


# (j) Event signing keys: each service its own key, consumers the keyring ---------------------------
def volume_sources(service: dict) -> dict[str, str]:
    """mount path -> volume name (named volumes only)."""
    out = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


def test_each_service_signs_with_its_own_key_volume_and_consumers_trust_the_keyring(services):
    from shared.signing import VERIFYING_SERVICES
    job = services["event-keys"]
    assert is_one_shot(job) and command(job)[:3] == ["python", "-m", "shared.signing"]
    job_mounts = volume_sources(job)
    for svc in SERVICES:
        env = environment(services[svc])
        key_file = env[f"JZ_{svc.upper()}_EVENT_SIGNING_KEY_FILE"]
        mounts = volume_sources(services[svc])
        key_dir = str(Path(key_file).parent)
        assert mounts.get(key_dir) == f"event-key-{svc}" and job_mounts[key_dir] == f"event-key-{svc}"
        assert key_file == f"{key_dir}/events.pem"
        others = {f"event-key-{o}" for o in SERVICES if o != svc}
        assert not others & set(mounts.values()), f"{svc} mounts another service's private key"
        assert any(str(v).endswith(":ro") for v in services[svc]["volumes"] if f"event-key-{svc}" in str(v))
        assert services[svc]["depends_on"]["event-keys"]["condition"] == "service_completed_successfully"
        if svc in (*VERIFYING_SERVICES, "registry"):  # the registry verifies benefits' monitoring events
            keyring = env["JZ_EVENT_TRUSTED_KEYS_FILE"]
            assert mounts.get(str(Path(keyring).parent)) == "event-keyring"
            assert keyring in command(job)


def test_k8s_services_mount_their_own_signing_key_secret():
    from shared.signing import VERIFYING_SERVICES
    docs = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Deployment"}
    config = next(doc for _, doc in k8s_documents() if doc["kind"] == "ConfigMap"
                  and doc["metadata"]["name"] == "jingzhun-settings")
    for svc in SERVICES:
        pod = docs[svc]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        key_file = env[f"JZ_{svc.upper()}_EVENT_SIGNING_KEY_FILE"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        key_volume = volumes[mounts[str(Path(key_file).parent)]]
        assert key_volume["secret"]["secretName"] == f"jingzhun-event-key-{svc}"
        assert pod["securityContext"].get("fsGroup") == pod["securityContext"]["runAsGroup"]  # readable, not by others
        assert key_volume["secret"]["defaultMode"] & 0o007 == 0
        secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert not {f"jingzhun-event-key-{o}" for o in SERVICES if o != svc} & secrets
        if svc in (*VERIFYING_SERVICES, "registry"):  # the registry verifies benefits' monitoring events
            keyring_dir = str(Path(config["data"]["JZ_EVENT_TRUSTED_KEYS_FILE"]).parent)
            assert volumes[mounts[keyring_dir]]["configMap"]["name"] == "jingzhun-event-keyring"


def test_k8s_secret_volumes_are_readable_by_the_service_user_and_nobody_else():
    """Kubernetes mounts Secret files owned by root with the pod's fsGroup: a mode without the group read
    bit (e.g. 0400) makes a key unreadable by the non-root service user, so the service cannot start."""
    checked = 0
    for _, doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        context = pod.get("securityContext") or {}
        for volume in pod.get("volumes") or []:
            if "secret" not in volume:
                continue
            mode = volume["secret"].get("defaultMode", 0o644)
            assert mode & 0o007 == 0, (doc["metadata"]["name"], volume["name"], oct(mode))
            if context.get("runAsUser", 0) != 0:
                assert context.get("fsGroup") is not None and mode & 0o040, (doc["metadata"]["name"], volume["name"], oct(mode))
            checked += 1
    assert checked >= 4


def test_kafka_init_creates_the_broker_epoch_topic_kept_forever(services):
    """Markers must outlive the data topics' retention: a marker that expired would look like a fresh broker."""
    script = " ".join(command(services["kafka-init"]))
    assert re.search(r"--topic jz\.epochs\.v1 \\?\s*--partitions 1 .*--config retention\.ms=-1", script), script


# Staff sign-in: Keycloak ---------------------------------------------------------------------------------
KEYCLOAK_REALM_FILE = ROOT / "deploy" / "keycloak" / "jingzhun-realm.json"


@pytest.fixture(scope="module")
def realm() -> dict:
    import json
    return json.loads(KEYCLOAK_REALM_FILE.read_text(encoding="utf-8"))


def test_keycloak_runs_in_production_mode_on_its_own_database(services):
    keycloak = services["keycloak"]
    cmd = command(keycloak)
    assert cmd[0] == "start" and "start-dev" not in cmd and "--import-realm" in cmd
    env = environment(keycloak)
    assert env["KC_DB"] == "postgres" and env["KC_DB_URL"].endswith("//postgres:5432/keycloak")
    assert env["KC_DB_USERNAME"] == "keycloak" and env["KC_DB_USERNAME"] != environment(services["postgres"])["POSTGRES_USER"]
    for secret in ("KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_PASSWORD"):  # no default password: compose refuses
        assert ":?" in env[secret] and resolve(env[secret]) != "admin", secret
    assert env["KC_HOSTNAME"].startswith("${KEYCLOAK_PUBLIC_URL") and resolve(env["KC_HOSTNAME"]).startswith("http")
    probe = " ".join(keycloak["healthcheck"]["test"])
    assert env["KC_HEALTH_ENABLED"] == "true" and "/dev/tcp/127.0.0.1/9000" in probe and "GET /health/ready" in probe
    assert keycloak["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounts = [v.split(":") for v in keycloak["volumes"]]
    assert ["./deploy/keycloak/jingzhun-realm.json", "/opt/keycloak/data/import/jingzhun-realm.json", "ro"] in mounts
    assert ":" in keycloak["image"] and not keycloak["image"].endswith(":latest")


def test_keycloak_database_is_created_by_an_init_script_with_its_own_role(services):
    init = [v for v in services["postgres"]["volumes"] if "keycloak" in v]
    assert init and init[0].split(":")[1].startswith("/docker-entrypoint-initdb.d/")
    script = (ROOT / init[0].split(":")[0]).read_text(encoding="utf-8")
    assert "CREATE ROLE keycloak LOGIN PASSWORD :'password'" in script
    assert "CREATE DATABASE keycloak OWNER keycloak" in script and "REVOKE ALL ON DATABASE keycloak FROM PUBLIC" in script
    assert "KEYCLOAK_DB_PASSWORD" in environment(services["postgres"])
    # the services' own init script stays the first one (the check above that reads volumes[0])
    assert "init-databases.sql" in [v for v in services["postgres"]["volumes"] if "initdb" in v][0]


def test_services_trust_the_realm_keycloak_issues_for(services, realm):
    public_url = resolve(environment(services["keycloak"])["KC_HOSTNAME"])
    for name in SERVICES:
        env = environment(services[name])
        assert resolve(env["JZ_JWT_ISSUER"]) == f"{public_url}/realms/{realm['realm']}", name
        assert resolve(env["JZ_JWT_JWKS_URL"]) == f"http://keycloak:8080/realms/{realm['realm']}/protocol/openid-connect/certs"
        assert resolve(env["JZ_OIDC_AUTHORIZATION_URL"]) == f"{public_url}/realms/{realm['realm']}/protocol/openid-connect/auth"
        assert resolve(env["JZ_OIDC_TOKEN_URL"]) == f"{public_url}/realms/{realm['realm']}/protocol/openid-connect/token"
        assert resolve(env["JZ_JWT_AUDIENCE"]) == "jingzhun"


def test_realm_has_the_docs_client_public_with_pkce_and_the_audience(realm):
    [client] = [c for c in realm["clients"] if c["clientId"] == CommonSettings().oidc_client_id]
    assert client["publicClient"] is True and client["standardFlowEnabled"] is True
    assert client["implicitFlowEnabled"] is False and client["directAccessGrantsEnabled"] is False
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert {f"http://localhost:{port}/docs/oauth2-redirect" for port in DEFAULT_PORTS.values()} <= set(client["redirectUris"])
    assert not any("*" in uri for uri in client["redirectUris"])  # exact redirects only
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    audience = mappers["oidc-audience-mapper"]
    assert audience["included.custom.audience"] == CommonSettings().jwt_audience and audience["access.token.claim"] == "true"
    area = mappers["oidc-usermodel-attribute-mapper"]
    assert area["user.attribute"] == "area" and area["claim.name"] == CommonSettings().oidc_area_claim
    assert area["access.token.claim"] == "true" and area["multivalued"] == "false"


def test_realm_roles_are_the_ones_the_services_map_and_users_cannot_set_their_area(realm):
    import json
    roles = {role["name"] for role in realm["roles"]["realm"]}
    assert roles == set(CommonSettings().oidc_role_scopes)
    assert "realm_access.roles" in CommonSettings().oidc_roles_claims  # where Keycloak puts realm roles
    [profile] = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    attributes = {a["name"]: a for a in json.loads(profile["config"]["kc.user.profile.config"][0])["attributes"]}
    assert attributes["area"]["permissions"]["edit"] == ["admin"]  # a person cannot widen their own area
    assert attributes["area"]["validations"]["pattern"]["pattern"] == r"^\d{2,12}$"
    assert "users" not in realm and realm["registrationAllowed"] is False  # no demo people in production


def test_k8s_docs_signin_points_at_the_issuer_realm():
    [settings] = [doc for _, doc in k8s_documents() if doc["kind"] == "ConfigMap" and "JZ_JWT_ISSUER" in doc["data"]]
    data = settings["data"]
    assert data["JZ_OIDC_AUTHORIZATION_URL"] == data["JZ_JWT_ISSUER"] + "/protocol/openid-connect/auth"
    assert data["JZ_OIDC_TOKEN_URL"] == data["JZ_JWT_ISSUER"] + "/protocol/openid-connect/token"
