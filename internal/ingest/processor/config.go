package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultDedupeWindow = 24 * time.Hour
	DefaultMaxBatch     = 500
	// DefaultGroupSuffix is appended to the topic prefix to name the
	// consumer group when Config.Group is empty.
	DefaultGroupSuffix = "processor"
)

// Config configures a Processor.
type Config struct {
	// Kafka is the connection and the topic prefix.
	Kafka config.Kafka
	// Group is the consumer group; default "<topic prefix>processor".
	Group string
	// InstanceID makes this process's transactional id
	// ("<group>-<instance id>"); it must be unique among the live members
	// of the group, or they fence each other. Default "<hostname>-<pid>".
	//
	// When it is set (not defaulted) it is also the member's static group
	// instance id (KIP-345): a restarted process with the same InstanceID
	// takes its predecessor's place and partitions at once, without waiting
	// for the session timeout or a rebalance. A crashed static member's
	// partitions wait for it (or for the session timeout, when it is gone
	// for good); a graceful stop leaves the group explicitly.
	InstanceID string
	// DedupeWindow is how long a command id is remembered; default 24 h. It
	// must not exceed the command-results retention.
	DedupeWindow time.Duration
	// MaxBatch caps the records polled into one transaction; default 500.
	MaxBatch int
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed process) before giving its partitions to
	// others; default Kafka's 45 s. A restarted instance with the same
	// InstanceID fences the crashed one's open transaction at once.
	SessionTimeout time.Duration
	// StallTimeout is how long polled commands may wait for their
	// transaction to end before Ready reports the processor stalled (a
	// supervisor can then restart it); default 30 s.
	StallTimeout time.Duration
	// Registry, when set, reads commands in the Confluent Schema Registry
	// wire format (0, 4-byte schema id, Avro body) besides single-object
	// encoding; nil dead-letters them. See codec.Registry.
	Registry *codec.Registry
	// SagaKey, shared by every processor of the ledger, signs the saga
	// commands they write (HeaderOriginMAC) and is required of every saga
	// command they read. Empty trusts the origin header alone, which any
	// producer that may write the commands topic can forge; `ingest serve`
	// refuses to run a processor without one unless told otherwise.
	SagaKey []byte
	// Log receives the processor's logs; default slog.Default().
	Log *slog.Logger
	// Registerer registers the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider, when set, traces every command: a span per command
	// processed, child of the trace context in the command record's
	// headers, whose output records carry it on (trace.go). Nil: no hook,
	// no span, no header.
	TracerProvider trace.TracerProvider
}

// withDefaults returns c with its zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = c.Kafka.TopicPrefix + DefaultGroupSuffix
	}
	if c.InstanceID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "processor"
		}
		c.InstanceID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate reports every problem with c (after defaults).
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate()}
	if c.DedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("dedupe window %s: must be positive", c.DedupeWindow))
	}
	if c.SessionTimeout != 0 && (c.SessionTimeout < 3*time.Second || c.SessionTimeout > 30*time.Minute) {
		errs = append(errs, fmt.Errorf("session timeout %s: want 3s..30m", c.SessionTimeout))
	}
	if c.MaxBatch < 0 || c.MaxBatch > 100_000 {
		errs = append(errs, fmt.Errorf("max batch %d: want 1..100000", c.MaxBatch))
	}
	if n := len(c.SagaKey); n > 0 && n < MinSagaKeyBytes {
		errs = append(errs, fmt.Errorf("saga key of %d bytes: want at least %d", n, MinSagaKeyBytes))
	}
	return errors.Join(errs...)
}
