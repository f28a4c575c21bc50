// Package projection turns events into read-model views. It holds the event
// as the projectors see it, the Sink port every view implements (Redis,
// ClickHouse, in-memory), and the pure per-event view logic shared by them.
// Every view is idempotent by version: applying an event whose version is
// not the next one for its aggregate changes nothing, so redelivery after a
// crash, client retries and replays from offset 0 leave a view as it was.
package projection

import (
	"context"
	"time"
)

// Event is one record of the events topic, decoded.
type Event struct {
	Partition int32
	Offset    int64
	// Value is a pointer to a codec event type (*codec.FundsDeposited, …).
	Value       any
	Type        string // Avro full name, e.g. ledger.events.FundsDeposited
	EventID     string
	AggregateID string
	Version     int64
	CommandID   string
	OccurredAt  time.Time
	// Redacted: the record carries HeaderRedacted, a copy of an earlier
	// event under the same key with its personal data blanked
	// (codec.Redact) by an erasure.
	Redacted bool
}

// HeaderRedacted marks a record of the events, snapshots or command-results
// topic that ledgerctl erase wrote in place of an earlier one under the same
// key, with its personal data blanked; its value is the erasure's time.
const HeaderRedacted = "redacted"

// Redactor is a sink that can blank, in what it already holds, the personal
// data of events it applied before (the fields codec.Redact blanks). The
// projectors call it with every redacted copy they read, after Apply:
// Apply skips a copy whose version the view holds, and Redact then blanks
// the view's copy. It must be idempotent and leave alone what it does not
// hold.
type Redactor interface {
	Redact(ctx context.Context, events []Event) error
}

// Sink applies events to one read model.
//
// Apply receives events in log order per partition (so per aggregate) and
// returns only when the batch is durable in the store; the projector commits
// the Kafka offsets after that. Apply must be idempotent per (aggregate,
// version) and safe to call again with the same or an overlapping batch after
// an error. An error means nothing of the batch may be assumed applied; the
// projector backs off and retries. Sinks are used by one goroutine at a time.
type Sink interface {
	Name() string
	Apply(ctx context.Context, batch []Event) error
	// Ping reports whether the store answers (readiness).
	Ping(ctx context.Context) error
}

// AccountView is an account as a read model shows it.
type AccountView struct {
	AccountID      string    `json:"account_id"`
	Owner          string    `json:"owner"`
	Currency       string    `json:"currency"`
	Balance        int64     `json:"balance"`
	OverdraftLimit int64     `json:"overdraft_limit"`
	Status         string    `json:"status"` // open | closed
	Version        int64     `json:"version"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// AccountReader reads accounts back from a view; ok is false for an
// account the view does not know.
type AccountReader interface {
	Account(ctx context.Context, id string) (v AccountView, ok bool, err error)
}

// View is a sink whose accounts can be read back: what the contract suite
// (projectiontest) checks every implementation against.
type View interface {
	Sink
	AccountReader
}
