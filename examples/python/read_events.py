"""Reads the ledger's events topic from the beginning to its current end with
confluent-kafka (read_committed: only events of committed transactions) and
decodes every record with fastavro: the writer schema is found by the
record's fingerprint among schemas/history (every released version, legacy
fingerprints included) and resolved to the current schema of its name.
Prints one JSON line per event.

    python read_events.py --bootstrap 127.0.0.1:9092 --topic ledger.events --schemas ../../schemas
"""

import argparse
import datetime
import json
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import ledger_schemas


def plain(v):
    """timestamp-millis values come back as datetimes: epoch milliseconds."""
    if isinstance(v, datetime.datetime):
        return int(v.timestamp() * 1000)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--config", help="a file of client properties (key=value): the connection's security")
    args = ap.parse_args()

    readers = ledger_schemas.current(args.schemas)
    writers = ledger_schemas.history(args.schemas)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "ledger-example-" + str(uuid.uuid4()),  # assign() below; nothing is committed
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,  # tells when a partition's committed end is reached
        **ledger_schemas.client_config(args.config),
    })
    meta = consumer.list_topics(args.topic, timeout=10)
    if meta.topics[args.topic].error is not None:
        raise SystemExit(f"{args.topic}: {meta.topics[args.topic].error}")
    parts = sorted(meta.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])
    at_end = set()
    try:
        while len(at_end) < len(parts):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise SystemExit(f"consume: {msg.error()}")
            at_end.discard(msg.partition())
            name, event, legacy = ledger_schemas.decode(msg.value(), writers, readers)
            print(json.dumps({"partition": msg.partition(), "offset": msg.offset(), "type": name,
                              "legacy_fingerprint": legacy, "event": plain(event)},
                             ensure_ascii=False), flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
