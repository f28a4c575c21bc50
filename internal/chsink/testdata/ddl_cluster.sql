-- schema, generation 0
CREATE TABLE IF NOT EXISTS ledger.ledger_events_local ON CLUSTER ledger_cluster (
    event_id String,
    aggregate_id String,
    version UInt64,
    type String,
    command_id String,
    correlation_id String,
    causation_id String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    currency String,
    amount Int64,
    balance_after Int64,
    transfer_id String,
    counterparty String,
    owner String,
    overdraft_limit Int64,
    reference String,
    reason String,
    kafka_partition Int32,
    kafka_offset Int64,
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/ledger_events_local', '{replica}', version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_id, version);

CREATE TABLE IF NOT EXISTS ledger.ledger_events ON CLUSTER ledger_cluster AS ledger.ledger_events_local
ENGINE = Distributed(ledger_cluster, ledger, ledger_events_local, cityHash64(aggregate_id));

CREATE TABLE IF NOT EXISTS ledger.account_balances_local ON CLUSTER ledger_cluster (
    account_id String,
    owner String,
    currency String,
    balance Int64,
    overdraft_limit Int64,
    status String,
    version UInt64,
    updated_at DateTime('UTC'),
    updated_at_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/account_balances_local', '{replica}', version)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS ledger.account_balances ON CLUSTER ledger_cluster AS ledger.account_balances_local
ENGINE = Distributed(ledger_cluster, ledger, account_balances_local, cityHash64(account_id));

CREATE TABLE IF NOT EXISTS ledger.volume_hourly_local ON CLUSTER ledger_cluster (
    currency String,
    hour DateTime('UTC'),
    type String,
    events UInt64,
    volume Int64,
    net Int64,
    inflow_e9 UInt64,
    inflow_rest UInt64,
    outflow_e9 UInt64,
    outflow_rest UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/ledger/volume_hourly_local', '{replica}', (events, volume, net, inflow_e9, inflow_rest, outflow_e9, outflow_rest))
PARTITION BY toYYYYMM(hour)
ORDER BY (currency, hour, type);

CREATE TABLE IF NOT EXISTS ledger.volume_hourly ON CLUSTER ledger_cluster AS ledger.volume_hourly_local
ENGINE = Distributed(ledger_cluster, ledger, volume_hourly_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger.volume_hourly_mv ON CLUSTER ledger_cluster TO ledger.volume_hourly_local AS
SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net,
    toUInt64(sumIf(intDiv(amount, 1000000000), amount > 0)) AS inflow_e9,
    toUInt64(sumIf(amount % 1000000000, amount > 0)) AS inflow_rest,
    toUInt64(sumIf(intDiv(-amount, 1000000000), amount < 0)) AS outflow_e9,
    toUInt64(sumIf((-amount) % 1000000000, amount < 0)) AS outflow_rest
FROM ledger.ledger_events_local
WHERE amount != 0
GROUP BY currency, hour, type;

-- schema, generation 2
CREATE TABLE IF NOT EXISTS ledger.ledger_events_g2_local ON CLUSTER ledger_cluster (
    event_id String,
    aggregate_id String,
    version UInt64,
    type String,
    command_id String,
    correlation_id String,
    causation_id String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    currency String,
    amount Int64,
    balance_after Int64,
    transfer_id String,
    counterparty String,
    owner String,
    overdraft_limit Int64,
    reference String,
    reason String,
    kafka_partition Int32,
    kafka_offset Int64,
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/ledger_events_g2_local', '{replica}', version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_id, version);

CREATE TABLE IF NOT EXISTS ledger.ledger_events_g2 ON CLUSTER ledger_cluster AS ledger.ledger_events_g2_local
ENGINE = Distributed(ledger_cluster, ledger, ledger_events_g2_local, cityHash64(aggregate_id));

CREATE TABLE IF NOT EXISTS ledger.account_balances_g2_local ON CLUSTER ledger_cluster (
    account_id String,
    owner String,
    currency String,
    balance Int64,
    overdraft_limit Int64,
    status String,
    version UInt64,
    updated_at DateTime('UTC'),
    updated_at_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/account_balances_g2_local', '{replica}', version)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS ledger.account_balances_g2 ON CLUSTER ledger_cluster AS ledger.account_balances_g2_local
ENGINE = Distributed(ledger_cluster, ledger, account_balances_g2_local, cityHash64(account_id));

CREATE TABLE IF NOT EXISTS ledger.volume_hourly_g2_local ON CLUSTER ledger_cluster (
    currency String,
    hour DateTime('UTC'),
    type String,
    events UInt64,
    volume Int64,
    net Int64,
    inflow_e9 UInt64,
    inflow_rest UInt64,
    outflow_e9 UInt64,
    outflow_rest UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/ledger/volume_hourly_g2_local', '{replica}', (events, volume, net, inflow_e9, inflow_rest, outflow_e9, outflow_rest))
PARTITION BY toYYYYMM(hour)
ORDER BY (currency, hour, type);

CREATE TABLE IF NOT EXISTS ledger.volume_hourly_g2 ON CLUSTER ledger_cluster AS ledger.volume_hourly_g2_local
ENGINE = Distributed(ledger_cluster, ledger, volume_hourly_g2_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger.volume_hourly_mv_g2 ON CLUSTER ledger_cluster TO ledger.volume_hourly_g2_local AS
SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net,
    toUInt64(sumIf(intDiv(amount, 1000000000), amount > 0)) AS inflow_e9,
    toUInt64(sumIf(amount % 1000000000, amount > 0)) AS inflow_rest,
    toUInt64(sumIf(intDiv(-amount, 1000000000), amount < 0)) AS outflow_e9,
    toUInt64(sumIf((-amount) % 1000000000, amount < 0)) AS outflow_rest
FROM ledger.ledger_events_g2_local
WHERE amount != 0
GROUP BY currency, hour, type;

-- swap to generation 2, live tables exist
DROP TABLE IF EXISTS ledger.volume_hourly_mv ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_mv_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.ledger_events_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_local_old ON CLUSTER ledger_cluster;

RENAME TABLE ledger.ledger_events_local TO ledger.ledger_events_local_old, ledger.ledger_events_g2_local TO ledger.ledger_events_local, ledger.account_balances_local TO ledger.account_balances_local_old, ledger.account_balances_g2_local TO ledger.account_balances_local, ledger.volume_hourly_local TO ledger.volume_hourly_local_old, ledger.volume_hourly_g2_local TO ledger.volume_hourly_local ON CLUSTER ledger_cluster;

CREATE TABLE IF NOT EXISTS ledger.ledger_events_local ON CLUSTER ledger_cluster (
    event_id String,
    aggregate_id String,
    version UInt64,
    type String,
    command_id String,
    correlation_id String,
    causation_id String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    currency String,
    amount Int64,
    balance_after Int64,
    transfer_id String,
    counterparty String,
    owner String,
    overdraft_limit Int64,
    reference String,
    reason String,
    kafka_partition Int32,
    kafka_offset Int64,
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/ledger_events_local', '{replica}', version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_id, version);

CREATE TABLE IF NOT EXISTS ledger.ledger_events ON CLUSTER ledger_cluster AS ledger.ledger_events_local
ENGINE = Distributed(ledger_cluster, ledger, ledger_events_local, cityHash64(aggregate_id));

CREATE TABLE IF NOT EXISTS ledger.account_balances_local ON CLUSTER ledger_cluster (
    account_id String,
    owner String,
    currency String,
    balance Int64,
    overdraft_limit Int64,
    status String,
    version UInt64,
    updated_at DateTime('UTC'),
    updated_at_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/account_balances_local', '{replica}', version)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS ledger.account_balances ON CLUSTER ledger_cluster AS ledger.account_balances_local
ENGINE = Distributed(ledger_cluster, ledger, account_balances_local, cityHash64(account_id));

CREATE TABLE IF NOT EXISTS ledger.volume_hourly_local ON CLUSTER ledger_cluster (
    currency String,
    hour DateTime('UTC'),
    type String,
    events UInt64,
    volume Int64,
    net Int64,
    inflow_e9 UInt64,
    inflow_rest UInt64,
    outflow_e9 UInt64,
    outflow_rest UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/ledger/volume_hourly_local', '{replica}', (events, volume, net, inflow_e9, inflow_rest, outflow_e9, outflow_rest))
PARTITION BY toYYYYMM(hour)
ORDER BY (currency, hour, type);

CREATE TABLE IF NOT EXISTS ledger.volume_hourly ON CLUSTER ledger_cluster AS ledger.volume_hourly_local
ENGINE = Distributed(ledger_cluster, ledger, volume_hourly_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger.volume_hourly_mv ON CLUSTER ledger_cluster TO ledger.volume_hourly_local AS
SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net,
    toUInt64(sumIf(intDiv(amount, 1000000000), amount > 0)) AS inflow_e9,
    toUInt64(sumIf(amount % 1000000000, amount > 0)) AS inflow_rest,
    toUInt64(sumIf(intDiv(-amount, 1000000000), amount < 0)) AS outflow_e9,
    toUInt64(sumIf((-amount) % 1000000000, amount < 0)) AS outflow_rest
FROM ledger.ledger_events_local
WHERE amount != 0
GROUP BY currency, hour, type;

DROP TABLE IF EXISTS ledger.ledger_events_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.ledger_events_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_local_old ON CLUSTER ledger_cluster;

-- swap to generation 2, no live tables
DROP TABLE IF EXISTS ledger.volume_hourly_mv ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_mv_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.ledger_events_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_local_old ON CLUSTER ledger_cluster;

RENAME TABLE ledger.ledger_events_g2_local TO ledger.ledger_events_local, ledger.account_balances_g2_local TO ledger.account_balances_local, ledger.volume_hourly_g2_local TO ledger.volume_hourly_local ON CLUSTER ledger_cluster;

CREATE TABLE IF NOT EXISTS ledger.ledger_events_local ON CLUSTER ledger_cluster (
    event_id String,
    aggregate_id String,
    version UInt64,
    type String,
    command_id String,
    correlation_id String,
    causation_id String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    currency String,
    amount Int64,
    balance_after Int64,
    transfer_id String,
    counterparty String,
    owner String,
    overdraft_limit Int64,
    reference String,
    reason String,
    kafka_partition Int32,
    kafka_offset Int64,
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/ledger_events_local', '{replica}', version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_id, version);

CREATE TABLE IF NOT EXISTS ledger.ledger_events ON CLUSTER ledger_cluster AS ledger.ledger_events_local
ENGINE = Distributed(ledger_cluster, ledger, ledger_events_local, cityHash64(aggregate_id));

CREATE TABLE IF NOT EXISTS ledger.account_balances_local ON CLUSTER ledger_cluster (
    account_id String,
    owner String,
    currency String,
    balance Int64,
    overdraft_limit Int64,
    status String,
    version UInt64,
    updated_at DateTime('UTC'),
    updated_at_ms Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/account_balances_local', '{replica}', version)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS ledger.account_balances ON CLUSTER ledger_cluster AS ledger.account_balances_local
ENGINE = Distributed(ledger_cluster, ledger, account_balances_local, cityHash64(account_id));

CREATE TABLE IF NOT EXISTS ledger.volume_hourly_local ON CLUSTER ledger_cluster (
    currency String,
    hour DateTime('UTC'),
    type String,
    events UInt64,
    volume Int64,
    net Int64,
    inflow_e9 UInt64,
    inflow_rest UInt64,
    outflow_e9 UInt64,
    outflow_rest UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/ledger/volume_hourly_local', '{replica}', (events, volume, net, inflow_e9, inflow_rest, outflow_e9, outflow_rest))
PARTITION BY toYYYYMM(hour)
ORDER BY (currency, hour, type);

CREATE TABLE IF NOT EXISTS ledger.volume_hourly ON CLUSTER ledger_cluster AS ledger.volume_hourly_local
ENGINE = Distributed(ledger_cluster, ledger, volume_hourly_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger.volume_hourly_mv ON CLUSTER ledger_cluster TO ledger.volume_hourly_local AS
SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net,
    toUInt64(sumIf(intDiv(amount, 1000000000), amount > 0)) AS inflow_e9,
    toUInt64(sumIf(amount % 1000000000, amount > 0)) AS inflow_rest,
    toUInt64(sumIf(intDiv(-amount, 1000000000), amount < 0)) AS outflow_e9,
    toUInt64(sumIf((-amount) % 1000000000, amount < 0)) AS outflow_rest
FROM ledger.ledger_events_local
WHERE amount != 0
GROUP BY currency, hour, type;

DROP TABLE IF EXISTS ledger.ledger_events_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_g2 ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.ledger_events_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.account_balances_local_old ON CLUSTER ledger_cluster;

DROP TABLE IF EXISTS ledger.volume_hourly_local_old ON CLUSTER ledger_cluster;

