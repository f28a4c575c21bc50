// Package processor is the write side's aggregate processor: one consumer
// group over the commands topic that, per polled batch, runs one Kafka
// transaction (franz-go's GroupTransactSession):
//
//	read commands → dedupe by command id → domain.Decide against in-memory
//	state → produce events, one snapshot per touched aggregate, a command
//	result per command, saga commands, DLQ records → commit the input offsets
//
// so that a crash, a rebalance or a broker error at any point leaves either
// all of a batch's effects or none of them.
//
// # Partitioning
//
// Every aggregate-keyed topic is co-partitioned: a command read from
// commands partition p writes its events, snapshots and result to partition
// p of their topics (a manual partitioner; the numbers are set explicitly).
// An aggregate lives in one partition, so the records of a batch are split
// by partition and the parts are decided in parallel (up to GOMAXPROCS at
// once), each in offset order.
//
// Saga commands (CreditTransfer, RefundTransfer) go to the commands
// partition of their target aggregate, computed with Kafka's murmur2 key
// partitioner (kafkax.KeyPartition). A command whose key does not hash to
// the partition it was read from (a producer with another partitioner) is
// sent to the DLQ rather than processed, since it would split an aggregate's
// state between two owners.
//
// # State
//
// State lives in memory per owned partition: the accounts (domain.Account
// by aggregate id) and the dedupe index. When a partition is assigned, and
// before any of its commands is polled (franz-go runs OnPartitionsAssigned
// before fetching the group's offsets), it is restored from the snapshots
// partition, read under read_committed up to the high watermark captured at
// assignment (not merely the last stable offset: an open transaction makes
// read_committed stop early, so the restore waits for it to resolve), and
// the dedupe index from the command-results partition (records within the
// dedupe window). Every transaction writes a snapshot of every aggregate it
// touched, so a snapshot is never older than the aggregate's last committed
// event and no event is ever replayed on restore.
//
// The decisions of a batch are staged and applied to the in-memory state
// only when GroupTransactSession.End reports a commit. On an abort nothing
// is applied and the session rewinds to the committed offsets. On an End
// error the outcome is unknown (franz-go #1207, #1052): the staged changes
// are dropped and every owned partition is restored again from Kafka, so the
// state matches whatever the broker actually committed and the rewound
// commands replay against it (the dedupe index turns any that did commit
// into no-ops).
//
// # Idempotency keys
//
// A command id is an idempotency key with the semantics payment APIs made
// the norm (Stripe's): the same key with the same request returns the first
// outcome, however often and after whatever crash, compaction or
// rebalance; the same key with a different request is refused with
// idempotency_key_reused and never answered with another request's
// outcome. A request is its type, aggregate, expected version and body
// (a SHA-256 fingerprint; issued_at and correlation_id are left out, since
// client libraries set them anew on retries).
//
// Scope: a key is ledger-wide, and enforced by the processor that owns the
// partition the command lands on, inside its transaction. Every use of a
// key on one account, and on every account of the same partition, is
// therefore checked exactly. A use for an account on another partition is
// invisible to that partition's processor and is processed as a request of
// its own: it gets its own outcome (the gateway's waiters, and GET
// /v1/commands/{id}?account_id=, tell the two apart), moves only its own
// money, and nothing is lost or applied twice; only the refusal is missing.
// Closing that gap needs a second hop to a partition chosen by the key
// before every command; see the README's known gaps.
//
// Identities the processor makes itself never derive from a client's key:
// events are "<aggregate>/<version>", a transfer's credit is "<debit event
// id>/credit" and a refund "<credit id>/refund" (domain.EventID). Saga
// commands and upstream commands keep separate id spaces in the index
// (results carry an "origin" header), and only a record with the header
// origin=processor may carry CreditTransfer or RefundTransfer: such a type
// from anyone else, or an upstream command id with a reserved saga suffix
// (domain.ReservedCommandID), is rejected with invalid_command. The header
// is not authentication; Kafka ACLs must keep untrusted producers from
// writing it.
//
// # Dedupe index
//
// Every command that reaches the processor gets exactly one final outcome
// on command-results (key = command id), dead-lettered ones included
// (reason dead_lettered, pointing at the DLQ record); a repeat writes no
// events and no snapshot, only an answer for its waiter: the first outcome
// verbatim, marked duplicate=true, or an idempotency_key_reused refusal
// marked reused=true. Every result record, whichever of these, carries the
// id's first outcome in the dedupe header (40 bytes: processed_at, version,
// type, reason, event count, request fingerprint) and the position of the
// command record it answers (command-offset), so that compaction, which
// keeps only the last record of a key, never loses a first outcome.
//
// The index holds, per owned partition, the command ids processed within
// the dedupe window (DedupeWindow, 24 h by default) and their first
// outcomes. It compares whole ids (a Go map keyed by the id string), never
// hashes. On assignment it is restored from the command-results partition,
// from the offset of the window's start, reading only keys and dedupe
// headers: about 110 bytes of heap per entry, and 10 million entries
// restore in the time BenchmarkRestoreDedupe reports (see the README).
// Records written before the header existed are read from their values.
//
// # Poison records
//
// A record that cannot be processed (empty key, undecodable value, unknown
// schema fingerprint, a type that is not a command, a key that is not its
// aggregate id, a misrouted key, an empty command id) is copied to the DLQ
// topic in the same transaction, with its original key and value and the
// headers error, source-topic, source-partition and source-offset, in the
// DLQ partition with the source's number (modulo the DLQ's partition count);
// processing continues with the next record.
package processor
