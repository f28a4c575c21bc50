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
// # Dedupe
//
// A command whose id was already processed within the dedupe window
// (DedupeWindow, 24 h by default) produces nothing at all: no events, no
// snapshot, no second result. Its first result is still on the compacted
// command-results topic (key = command id), which is where the gateway and
// clients look it up. The index maps a 64-bit hash of the command id to the
// result's timestamp (16 bytes of key and value, about 20–40 bytes per entry
// with Go's map overhead, so a million commands a day cost some 40 MB). A
// hash collision would wrongly drop a new command; with a random per-process
// seed its probability for n live entries is about n²/2⁶⁵ (3·10⁻⁸ for a
// million). Dedupe is per partition: an id reused for another aggregate on
// another partition is not caught.
//
// Saga commands and upstream commands have separate id spaces in the index
// (results carry an "origin" header), and only a record with the header
// origin=processor may carry CreditTransfer or RefundTransfer: such a type
// from anyone else, or an upstream command id with a reserved saga suffix
// (domain.ReservedCommandID), is rejected with invalid_command. The header
// is not authentication; Kafka ACLs must keep untrusted producers from
// writing it.
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
