package projection

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// Full Avro names of the events the views understand.
const (
	TypeAccountOpened    = "ledger.events.AccountOpened"
	TypeFundsDeposited   = "ledger.events.FundsDeposited"
	TypeFundsWithdrawn   = "ledger.events.FundsWithdrawn"
	TypeTransferDebited  = "ledger.events.TransferDebited"
	TypeTransferCredited = "ledger.events.TransferCredited"
	TypeTransferRefunded = "ledger.events.TransferRefunded"
	TypeAccountClosed    = "ledger.events.AccountClosed"
)

// Account statuses.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Outcome statuses.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// Transfer statuses. A transfer only moves forward: pending → completed | refunded.
const (
	TransferPending   = "pending"
	TransferCompleted = "completed"
	TransferRefunded  = "refunded"
)

// MaxRecentTransactions is the default bound of the recent-transactions list per account.
const MaxRecentTransactions = 100

// ErrTombstone is returned by FromRecord for a record without value: the
// erasure of one event (data-protection request). It is not an event; skip it.
var ErrTombstone = errors.New("projection: tombstone")

// ErrUnknownEvent matches (errors.Is) a record that decodes but is not an
// event the views know (a newer event type, or a stray record). Such records
// are counted and skipped, never fatal.
var ErrUnknownEvent = errors.New("projection: unknown event type")

// TransferView is the status of one transfer.
type TransferView struct {
	TransferID    string    `json:"transfer_id"`
	Status        string    `json:"status"` // pending | completed | refunded
	FromAccountID string    `json:"from_account_id"`
	ToAccountID   string    `json:"to_account_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// TxView is one entry of an account's recent transactions.
type TxView struct {
	EventID      string    `json:"event_id"`
	Type         string    `json:"type"`   // short event name: FundsDeposited, TransferDebited, …
	Amount       int64     `json:"amount"` // signed: negative when money leaves the account
	BalanceAfter int64     `json:"balance_after"`
	Version      int64     `json:"version"`
	OccurredAt   time.Time `json:"occurred_at"`
	TransferID   string    `json:"transfer_id,omitempty"`
	Counterparty string    `json:"counterparty,omitempty"` // the other account of a transfer
}

// Outcome is the outcome of one command, from the command-results topic.
type Outcome struct {
	CommandID   string    `json:"command_id"`
	AggregateID string    `json:"aggregate_id"`
	CommandType string    `json:"command_type"`
	Status      string    `json:"status"` // accepted | rejected
	Reason      string    `json:"reason,omitempty"`
	Message     string    `json:"message,omitempty"`
	Version     int64     `json:"version"`
	ProcessedAt time.Time `json:"processed_at"`
}

// FromRecord decodes one record of the events topic. A tombstone returns
// ErrTombstone; a record that decodes to something other than a known event
// returns an error matching ErrUnknownEvent; bytes that do not decode return
// the codec error (codec.ErrMalformed or codec.ErrUnknownSchema).
func FromRecord(r *kgo.Record) (Event, error) {
	if r.Value == nil {
		return Event{}, fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, ErrTombstone)
	}
	v, err := codec.Default().Decode(r.Value)
	if err != nil {
		return Event{}, fmt.Errorf("decode event at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	e, err := EventOf(v)
	if err != nil {
		return Event{}, fmt.Errorf("event at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	e.Partition, e.Offset = r.Partition, r.Offset
	_, e.Redacted = kafkax.Header(r, HeaderRedacted)
	return e, nil
}

// EventOf wraps a decoded codec event (a pointer to a generated event type)
// into an Event, filling the envelope fields. Partition and Offset stay zero.
func EventOf(v any) (Event, error) {
	f, ok := codec.FactsOf(v)
	if !ok {
		return Event{}, fmt.Errorf("%T: %w", v, ErrUnknownEvent)
	}
	return Event{Value: v, Type: f.Name, EventID: f.EventID, AggregateID: f.AggregateID, Version: f.Version,
		CommandID: f.CommandID, OccurredAt: f.OccurredAt}, nil
}

// HeaderReused marks a command result that refuses a request whose command
// id was already used for another request (idempotency_key_reused). It
// answers that request only: the id's outcome is its first one, so views of
// command outcomes leave such records out (IsReuseRefusal).
const HeaderReused = "reused"

// IsReuseRefusal reports whether r is a command result marked HeaderReused.
func IsReuseRefusal(r *kgo.Record) bool {
	_, ok := kafkax.Header(r, HeaderReused)
	return ok
}

// OutcomeFromRecord decodes one record of the command-results topic. A
// tombstone returns ErrTombstone, anything but a CommandResult an error
// matching ErrUnknownEvent.
func OutcomeFromRecord(r *kgo.Record) (Outcome, error) {
	if r.Value == nil {
		return Outcome{}, fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, ErrTombstone)
	}
	v, err := codec.Default().Decode(r.Value)
	if err != nil {
		return Outcome{}, fmt.Errorf("decode result at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	cr, ok := v.(*codec.CommandResult)
	if !ok {
		return Outcome{}, fmt.Errorf("result at %s/%d@%d: %T: %w", r.Topic, r.Partition, r.Offset, v, ErrUnknownEvent)
	}
	return OutcomeOf(cr), nil
}

// OutcomeOf maps a CommandResult to its view; the status is lower case.
func OutcomeOf(cr *codec.CommandResult) Outcome {
	status := OutcomeRejected
	if cr.Status == codec.StatusAccepted {
		status = OutcomeAccepted
	}
	return Outcome{
		CommandID: cr.CommandID, AggregateID: cr.AggregateID, CommandType: cr.CommandType,
		Status: status, Reason: cr.Reason, Message: cr.Message, Version: cr.Version,
		ProcessedAt: cr.ProcessedAt.UTC(),
	}
}

// AccountPatch is what one event changes on its account, independent of the
// stored state: sinks that guard the version inside the store (a Redis
// script) write exactly these fields once the guard passes.
type AccountPatch struct {
	Open           bool // AccountOpened: owner, currency, overdraft limit and a zero balance are set
	Owner          string
	Currency       string
	OverdraftLimit int64
	SetBalance     bool
	Balance        int64
	Close          bool
	Version        int64
	UpdatedAt      time.Time
	Tx             *TxView // the recent-transactions entry, for money events
}

// PatchOf returns the change e makes to its account; ok is false for a
// value that is not a known event.
func PatchOf(e Event) (p AccountPatch, ok bool) {
	f, ok := codec.FactsOf(e.Value)
	if !ok {
		return AccountPatch{}, false
	}
	p = AccountPatch{Version: e.Version, UpdatedAt: e.OccurredAt.UTC()}
	switch {
	case f.Open:
		p.Open, p.Owner, p.Currency, p.OverdraftLimit = true, f.Owner, f.Currency, f.OverdraftLimit
		p.SetBalance = true
	case f.Money:
		p.SetBalance, p.Balance = true, f.BalanceAfter
		p.Tx = &TxView{
			EventID: e.EventID, Type: f.Short, Amount: f.Amount, BalanceAfter: f.BalanceAfter,
			Version: e.Version, OccurredAt: e.OccurredAt.UTC(), TransferID: f.TransferID, Counterparty: f.Counterparty,
		}
	case f.Close:
		p.Close = true
	}
	return p, true
}

// Apply returns cur with the patch applied (no version check).
func (p AccountPatch) Apply(cur AccountView, aggregateID string) AccountView {
	cur.AccountID = aggregateID
	if p.Open {
		cur.Owner, cur.Currency, cur.OverdraftLimit, cur.Status = p.Owner, p.Currency, p.OverdraftLimit, StatusOpen
	}
	if p.SetBalance {
		cur.Balance = p.Balance
	}
	if p.Close {
		cur.Status = StatusClosed
	}
	cur.Version, cur.UpdatedAt = p.Version, p.UpdatedAt
	return cur
}

// Guard results: how an event relates to the stored version of its aggregate.
const (
	Applies   = iota // e.Version == stored+1
	Duplicate        // e.Version <= stored: seen before, ignore
	Gap              // e.Version > stored+1: an earlier event is missing, do not apply
)

// Guard classifies version against the stored version (0 when unknown).
func Guard(stored, version int64) int {
	switch {
	case version == stored+1:
		return Applies
	case version <= stored:
		return Duplicate
	}
	return Gap
}

// NextAccount returns the account after e, and whether e applies: only when
// e.Version is the next version of the account (1 for an unknown one) and e
// is a known event. When it does not apply, cur is returned unchanged.
func NextAccount(cur AccountView, ok bool, e Event) (AccountView, bool) {
	if !ok {
		cur = AccountView{}
	}
	if Guard(cur.Version, e.Version) != Applies {
		return cur, false
	}
	p, known := PatchOf(e)
	if !known {
		return cur, false
	}
	return p.Apply(cur, e.AggregateID), true
}

// TransferRank orders transfer statuses: a status only replaces one of a
// lower rank, so the view converges whatever order the debit (source
// partition) and the credit or refund (destination/source) arrive in.
func TransferRank(status string) int {
	switch status {
	case TransferPending:
		return 1
	case TransferCompleted, TransferRefunded:
		return 2
	}
	return 0
}

// TransferOf returns the transfer state e reports, for the three transfer events.
func TransferOf(e Event) (TransferView, bool) {
	f, _ := codec.FactsOf(e.Value)
	at := e.OccurredAt.UTC()
	switch f.Transfer {
	case codec.TransferDebitedStep:
		return TransferView{f.TransferID, TransferPending, e.AggregateID, f.Counterparty, f.Magnitude(), f.Currency, at}, true
	case codec.TransferCreditedStep:
		return TransferView{f.TransferID, TransferCompleted, f.Counterparty, e.AggregateID, f.Magnitude(), f.Currency, at}, true
	case codec.TransferRefundedStep:
		return TransferView{f.TransferID, TransferRefunded, e.AggregateID, f.Counterparty, f.Magnitude(), f.Currency, at}, true
	}
	return TransferView{}, false
}

// NextTransfer returns the transfer after e and whether e changes it: a
// transfer event applies when its status ranks above the stored one. Every
// transfer event carries all fields, so the final view does not depend on
// the order the events arrive in.
func NextTransfer(cur TransferView, ok bool, e Event) (TransferView, bool) {
	t, isTransfer := TransferOf(e)
	if !isTransfer {
		return cur, false
	}
	if ok && TransferRank(t.Status) <= TransferRank(cur.Status) {
		return cur, false
	}
	return t, true
}
