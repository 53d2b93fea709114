#!/bin/bash
# One-shot, idempotent: the lineage topic, the producer and consumer passwords (as .env says now:
# a changed password in .env takes effect at the next `docker compose up`), and least-privilege ACLs.
set -euo pipefail
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_PRODUCER_PASSWORD:?}" "${KAFKA_CONSUMER_PASSWORD:?}" "${KAFKA_SERVE_PASSWORD:?}" "${TOPIC:?}" "${GROUP:?}" "${PARTITIONS:?}"
umask 077
cat > /tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPS
bin=/opt/kafka/bin
server=(--bootstrap-server kafka:9092 --command-config /tmp/admin.properties)
"$bin/kafka-topics.sh" "${server[@]}" --create --if-not-exists --topic "$TOPIC" --partitions "$PARTITIONS" --replication-factor 1
for user in producer consumer serve; do
  var="KAFKA_${user^^}_PASSWORD"
  "$bin/kafka-configs.sh" "${server[@]}" --alter --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[password=${!var}]"
done
acl=("$bin/kafka-acls.sh" "${server[@]}" --add --force)
# Producers (Airflow tasks, `tidemark` commands): write and describe the topic; read the consumer
# group's offsets (describe) so the monitor DAG can measure the consumer's lag. Nothing else.
"${acl[@]}" --allow-principal User:producer --operation Write --operation Describe --topic "$TOPIC"
"${acl[@]}" --allow-principal User:producer --operation Describe --group "$GROUP"
# The lineage consumer: read the topic, only as its own group.
"${acl[@]}" --allow-principal User:consumer --operation Read --operation Describe --topic "$TOPIC"
"${acl[@]}" --allow-principal User:consumer --operation Read --group "$GROUP"
# `tidemark serve`: follow alias moves (read the topic, as groups of its own, prefix tidemark-serve.)
# and write its deployment runs (serve.NAME). It never reads as the lineage store's group.
"${acl[@]}" --allow-principal User:serve --operation Read --operation Write --operation Describe --topic "$TOPIC"
"${acl[@]}" --allow-principal User:serve --operation Read --group tidemark-serve. --resource-pattern-type prefixed
