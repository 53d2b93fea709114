#!/bin/bash
# Kafka (KRaft, one node) with SASL/SCRAM on every listener another container or the host can reach.
# Why a script and not the image's KAFKA_* variables: SCRAM users of a KRaft cluster must exist when
# its storage is formatted (`kafka-storage.sh format --add-scram`), and the image's own start-up
# formats without them. The controller listener is bound to the container's loopback, so nothing
# outside this container can reach the one listener without SASL.
set -euo pipefail
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_PRODUCER_PASSWORD:?}" "${KAFKA_CONSUMER_PASSWORD:?}" "${KAFKA_SERVE_PASSWORD:?}" "${CLUSTER_ID:?}"
config=/tmp/server.properties
umask 077
cat > "$config" <<PROPS
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@localhost:9093
controller.listener.names=CONTROLLER
# kafka:9092 inside the compose network, 127.0.0.1:9094 from the host; both SASL/SCRAM.
listeners=INTERNAL://:9092,HOST://:9094,CONTROLLER://localhost:9093
advertised.listeners=INTERNAL://kafka:9092,HOST://localhost:9094
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# ACLs: producers write the lineage topic, only the consumer group reads it (infra/kafka/init.sh).
# ANONYMOUS is the broker talking to its own controller over the loopback-only listener.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
# One node: every replication factor is 1, and acks=all means this one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# \`tidemark init\` needs the lineage topic to exist (init.sh creates it); a typo'd topic must not appear silently.
auto.create.topics.enable=false
PROPS
# The admin client settings the health check and init.sh use.
cat > /tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPS
/opt/kafka/bin/kafka-storage.sh format --config "$config" --cluster-id "$CLUSTER_ID" --ignore-formatted \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=producer,password=${KAFKA_PRODUCER_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=consumer,password=${KAFKA_CONSUMER_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=serve,password=${KAFKA_SERVE_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$config"
