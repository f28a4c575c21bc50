// Package topology declares the ledger's Kafka topics (names, partitions,
// cleanup policies, retention) and reconciles a cluster with the declaration:
// Plan compares, Apply creates and alters, idempotently. Changes that would
// lose data or re-home aggregates are refused, never applied.
package topology

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Roles of the topics, each named <prefix><role>.
const (
	RoleCommands  = "commands"
	RoleEvents    = "events"
	RoleSnapshots = "snapshots"
	RoleResults   = "command-results"
	RoleDLQ       = "dlq"
)

// Names are the full topic names for one prefix.
type Names struct {
	Commands, Events, Snapshots, Results, DLQ string
}

// MaxCompactionLag bounds how long a record of a compacted topic stays on
// disk after a newer one under its key: how long an erasure's originals
// outlive their redacted copies.
const MaxCompactionLag = 24 * time.Hour

// NamesFor returns the topic names under prefix.
func NamesFor(prefix string) Names {
	return Names{
		Commands:  prefix + RoleCommands,
		Events:    prefix + RoleEvents,
		Snapshots: prefix + RoleSnapshots,
		Results:   prefix + RoleResults,
		DLQ:       prefix + RoleDLQ,
	}
}

// Topic is one declared topic.
type Topic struct {
	Name              string
	Role              string
	Partitions        int32
	ReplicationFactor int16
	// Configs are the topic-level configs this declaration owns; configs not
	// named here are left as the cluster has them.
	Configs map[string]string
	// AggregateKeyed topics are co-partitioned on the aggregate id: they must
	// share one partition count, and adding partitions would move aggregates.
	AggregateKeyed bool
}

// Options shape the declaration.
type Options struct {
	Prefix            string
	Partitions        int32         // of every aggregate-keyed topic; bounds processor and projector parallelism
	ReplicationFactor int16         // 0: automatic (AutoReplicationFactor), resolved before Declare
	CommandRetention  time.Duration // commands are the input; keep them long enough to replay a bad deploy
	ResultRetention   time.Duration // ≥ the dedupe window: results feed command dedupe
	DLQRetention      time.Duration
}

// DefaultOptions is the production-leaning default for a single cluster.
func DefaultOptions() Options {
	return Options{
		Prefix:            "ledger.",
		Partitions:        12,
		ReplicationFactor: 1,
		CommandRetention:  7 * 24 * time.Hour,
		ResultRetention:   7 * 24 * time.Hour,
		DLQRetention:      14 * 24 * time.Hour,
	}
}

// MinResultRetention is the shortest retention of command-results that still
// covers the default 24 h dedupe window.
const MinResultRetention = 24 * time.Hour

// Validate reports every problem with o.
func (o Options) Validate() error {
	var errs []error
	if o.Partitions < 1 || o.Partitions > 10000 {
		errs = append(errs, fmt.Errorf("partitions %d: want 1..10000", o.Partitions))
	}
	if o.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("replication factor %d: want ≥ 1, or 0 for automatic", o.ReplicationFactor))
	}
	if o.CommandRetention < time.Hour {
		errs = append(errs, fmt.Errorf("command retention %s: want ≥ 1h", o.CommandRetention))
	}
	if o.ResultRetention < MinResultRetention {
		errs = append(errs, fmt.Errorf("result retention %s: want ≥ %s (the dedupe window)", o.ResultRetention, MinResultRetention))
	}
	if o.DLQRetention < time.Hour {
		errs = append(errs, fmt.Errorf("dlq retention %s: want ≥ 1h", o.DLQRetention))
	}
	return errors.Join(errs...)
}

// minInsync is min.insync.replicas for a replication factor: 2 from three
// replicas on (a write survives one broker's loss and one broker may be
// down), else 1.
func minInsync(rf int16) string {
	if rf >= 3 {
		return "2"
	}
	return "1"
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Declare returns the ledger's topics for o, in a stable order.
func Declare(o Options) []Topic {
	n := NamesFor(o.Prefix)
	minISR := minInsync(o.ReplicationFactor)
	topic := func(name, role string, keyed bool, cfg map[string]string) Topic {
		cfg["min.insync.replicas"] = minISR
		return Topic{Name: name, Role: role, Partitions: o.Partitions, ReplicationFactor: o.ReplicationFactor, Configs: cfg, AggregateKeyed: keyed}
	}
	return []Topic{
		topic(n.Commands, RoleCommands, true, map[string]string{
			"cleanup.policy": "delete",
			"retention.ms":   ms(o.CommandRetention),
		}),
		// The source of truth: compacted with unique keys (<aggregate>/<version>),
		// so nothing is ever removed except by a tombstone (data-protection
		// erasure), which stays visible for a week so every projector sees it.
		topic(n.Events, RoleEvents, true, map[string]string{
			"cleanup.policy":        "compact",
			"retention.ms":          "-1",
			"retention.bytes":       "-1",
			"delete.retention.ms":   ms(7 * 24 * time.Hour),
			"min.compaction.lag.ms": "0",
			// An erasure's redacted copies (ledgerctl erase) replace
			// their originals on disk within this bound.
			"max.compaction.lag.ms": ms(MaxCompactionLag),
		}),
		// Latest state per aggregate; short segments so compaction keeps the
		// topic close to one record per aggregate and restores stay fast.
		topic(n.Snapshots, RoleSnapshots, true, map[string]string{
			"cleanup.policy":            "compact",
			"retention.ms":              "-1",
			"segment.ms":                ms(time.Hour),
			"min.cleanable.dirty.ratio": "0.1",
			"max.compaction.lag.ms":     ms(MaxCompactionLag),
		}),
		topic(n.Results, RoleResults, true, map[string]string{
			"cleanup.policy":        "compact,delete",
			"retention.ms":          ms(o.ResultRetention),
			"segment.ms":            ms(time.Hour),
			"max.compaction.lag.ms": ms(MaxCompactionLag),
		}),
		topic(n.DLQ, RoleDLQ, false, map[string]string{
			"cleanup.policy": "delete",
			"retention.ms":   ms(o.DLQRetention),
		}),
	}
}
