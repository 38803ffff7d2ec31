"""Kafka client security options come from the settings and reach every aiokafka client."""
from __future__ import annotations

import ssl

import pytest
from aiokafka import AIOKafkaConsumer

from shared.bus import kafka_client_options, make_producer
from shared.config import AuditSettings, CommonSettings, RegistrySettings


def test_default_is_plaintext_for_the_development_broker():
    assert kafka_client_options(CommonSettings()) == {"security_protocol": "PLAINTEXT"}
    assert kafka_client_options(None) == {}


def test_sasl_scram_needs_and_passes_the_principal():
    settings = AuditSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="audit",
                             kafka_sasl_password="pw")
    assert kafka_client_options(settings) == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                              "sasl_plain_username": "audit", "sasl_plain_password": "pw"}
    with pytest.raises(ValueError, match="JZ_KAFKA_SASL_USERNAME"):
        kafka_client_options(AuditSettings(kafka_security_protocol="SASL_SSL"))


def test_sasl_ssl_adds_a_tls_context():
    options = kafka_client_options(RegistrySettings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="registry",
                                                    kafka_sasl_password="pw"))
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_service_prefixed_credentials_win_over_common_ones(monkeypatch):
    from shared.config import service_settings
    monkeypatch.setenv("JZ_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("JZ_REGISTRY_KAFKA_SASL_USERNAME", "registry")
    monkeypatch.setenv("JZ_REGISTRY_KAFKA_SASL_PASSWORD", "r")
    monkeypatch.setenv("JZ_BENEFITS_KAFKA_SASL_USERNAME", "benefits")
    monkeypatch.setenv("JZ_BENEFITS_KAFKA_SASL_PASSWORD", "b")
    assert kafka_client_options(service_settings("registry"))["sasl_plain_username"] == "registry"
    assert kafka_client_options(service_settings("benefits"))["sasl_plain_username"] == "benefits"


async def test_aiokafka_clients_accept_the_options():
    settings = AuditSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="audit",
                             kafka_sasl_password="pw")
    producer = make_producer("127.0.0.1:1", settings)
    assert producer.client._security_protocol == "SASL_PLAINTEXT"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **kafka_client_options(settings))
    assert consumer._client._sasl_plain_username == "audit"
