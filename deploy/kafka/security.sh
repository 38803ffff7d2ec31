#!/usr/bin/env bash
# Kafka principals and ACLs for Jingzhun (SASL/SCRAM-SHA-512, StandardAuthorizer, deny by default).
# Run by the compose `kafka-init` job and the Kubernetes `kafka-security` Job (a ConfigMap holds this
# same file; tests/unit/test_compose.py checks they are identical and that the ACL set is exactly
# the one below). Idempotent: users are upserted, ACLs added again are no-ops.
#
#   KAFKA_BOOTSTRAP           broker to talk to (as the admin super user)
#   KAFKA_ADMIN_CONFIG        client properties file of the admin (SASL PLAIN or SCRAM)
#   KAFKA_REGISTRY_PASSWORD   SCRAM password of principal "registry" (registry's outbox relay)
#   KAFKA_BENEFITS_PASSWORD   ... of "benefits" (benefits' relay and consumer)
#   KAFKA_AUDIT_PASSWORD      ... of "audit" (audit's consumer)
set -euo pipefail
bin=/opt/kafka/bin
: "${KAFKA_BOOTSTRAP:?}" "${KAFKA_ADMIN_CONFIG:?}"

user() {  # user <name> <password>
  "$bin/kafka-configs.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" \
    --alter --entity-type users --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}

acl() {  # acl <principal> <Read|Write|Describe> <topic|group> <name>
  "$bin/kafka-acls.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" \
    --add --allow-principal "User:$1" --operation "$2" "--$3" "$4" >/dev/null
}

user registry "${KAFKA_REGISTRY_PASSWORD:?}"
user benefits "${KAFKA_BENEFITS_PASSWORD:?}"
user audit "${KAFKA_AUDIT_PASSWORD:?}"

# registry publishes its own topic (through its outbox relay) and the access records of DCI partner searches.
acl registry Write topic jz.registry.v1
acl registry Write topic jz.access.v1
# registry reads benefits' topic for monitoring.risk_detected (automatic leads), dead-letters to its twin.
acl registry Read topic jz.benefits.v1
acl registry Write topic jz.benefits.v1.dlq
acl registry Read group registry
# registry reads its own topic for DCI subscriptions (notifications), group registry-dci.
acl registry Read topic jz.registry.v1
acl registry Write topic jz.registry.v1.dlq
acl registry Read group registry-dci
# benefits publishes decisions and partner access, reads the registry, dead-letters to its twin.
acl benefits Write topic jz.benefits.v1
acl benefits Write topic jz.access.v1
acl benefits Read topic jz.registry.v1
acl benefits Write topic jz.registry.v1.dlq
acl benefits Read group benefits
# audit only reads (and dead-letters what it cannot take to each topic's twin).
acl audit Read topic jz.registry.v1
acl audit Read topic jz.benefits.v1
acl audit Read topic jz.access.v1
acl audit Write topic jz.registry.v1.dlq
acl audit Write topic jz.benefits.v1.dlq
acl audit Write topic jz.access.v1.dlq
acl audit Read group audit
# Broker epochs (shared/broker_epoch.py): every process reads the markers and may write the first one;
# each relay reads what the consumer groups of its topics have committed (bounded replay).
acl registry Read topic jz.epochs.v1
acl registry Write topic jz.epochs.v1
acl benefits Read topic jz.epochs.v1
acl benefits Write topic jz.epochs.v1
acl audit Read topic jz.epochs.v1
acl audit Write topic jz.epochs.v1
acl registry Describe group benefits
acl registry Describe group audit
acl registry Describe group registry-dci
acl benefits Describe group audit
acl benefits Describe group registry

"$bin/kafka-acls.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" --list
