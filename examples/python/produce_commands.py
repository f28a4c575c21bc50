"""Produces ledger commands straight to Kafka, as an upstream Python system
would: confluent-kafka (librdkafka) and fastavro, single-object encoding with
the schemas from schemas/. See docs/producing-commands.md.

    python produce_commands.py --bootstrap 127.0.0.1:9092 --topic-prefix ledger. \
        --schemas ../../schemas --run demo-1

It sends one command of every type for the accounts <run>-a, <run>-b and
<run>-c (command ids <run>-1 … <run>-10) and prints one JSON line per record:
open three accounts, deposit into a (with expected_version), withdraw,
transfer a→b, close c, then three commands the ledger must reject: a
CreditTransfer and a RefundTransfer (saga-internal commands an upstream
producer may not send) and a deposit whose expected_version is stale.
"""

import argparse
import json
import time

from confluent_kafka import Producer

import ledger_schemas


def commands(run):
    a, b, c = run + "-a", run + "-b", run + "-c"
    out = []

    def cmd(type_, aggregate, expected_version=None, **body):
        n = len(out) + 1
        body.update(command_id=f"{run}-{n}", aggregate_id=aggregate,
                    expected_version=expected_version, correlation_id=run)
        out.append(("ledger.commands." + type_, body))

    cmd("OpenAccount", a, owner="Ada Lovelace", currency="EUR")  # overdraft_limit: its default
    cmd("OpenAccount", b, owner="Grace Hopper", currency="EUR", overdraft_limit=0)
    cmd("OpenAccount", c, owner="Émilie du Châtelet", currency="EUR")
    cmd("DepositFunds", a, 1, amount=10_000, reference="salary")
    cmd("WithdrawFunds", a, amount=2_500)
    cmd("TransferFunds", a, transfer_id=run + "-t1", from_account_id=a, to_account_id=b,
        amount=3_000, reference="rent")
    cmd("CloseAccount", c)
    cmd("CreditTransfer", b, transfer_id=run + "-forged", from_account_id=a, to_account_id=b,
        amount=999_999, currency="EUR")
    cmd("RefundTransfer", a, transfer_id=run + "-forged", from_account_id=a, to_account_id=b,
        amount=100, currency="EUR")
    cmd("DepositFunds", a, 1, amount=1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--config", help="a file of client properties (key=value): the connection's security")
    args = ap.parse_args()

    schemas = ledger_schemas.current(args.schemas)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        # librdkafka's default partitioner is consistent_random (CRC32); the
        # ledger's topics are partitioned like the Java client: murmur2.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        **ledger_schemas.client_config(args.config),
    })
    topic = args.topic_prefix + "commands"
    now = int(time.time() * 1000)
    for name, body in commands(args.run):
        body["issued_at"] = now  # timestamp-millis: epoch milliseconds
        value = ledger_schemas.encode(schemas[name], body)
        delivered = {}

        def on_delivery(err, msg, delivered=delivered):
            delivered["err"], delivered["msg"] = err, msg

        key = body["aggregate_id"]  # for TransferFunds: from_account_id
        producer.produce(topic, key=key.encode(), value=value, headers=[("type", name.encode())],
                         on_delivery=on_delivery)
        producer.flush(30)  # one at a time for the example
        if delivered.get("err") is not None or "msg" not in delivered:
            raise SystemExit(f"produce {name}: {delivered.get('err', 'not delivered in 30 s')}")
        msg = delivered["msg"]
        print(json.dumps({"type": name, "command_id": body["command_id"], "key": key,
                          "partition": msg.partition(), "offset": msg.offset()}, ensure_ascii=False),
              flush=True)


if __name__ == "__main__":
    main()
