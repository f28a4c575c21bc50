package domain

import "time"

// Avro full names of the events, as returned by Event.Type.
const (
	TypeAccountOpened    = "ledger.events.AccountOpened"
	TypeFundsDeposited   = "ledger.events.FundsDeposited"
	TypeFundsWithdrawn   = "ledger.events.FundsWithdrawn"
	TypeTransferDebited  = "ledger.events.TransferDebited"
	TypeTransferCredited = "ledger.events.TransferCredited"
	TypeTransferRefunded = "ledger.events.TransferRefunded"
	TypeAccountClosed    = "ledger.events.AccountClosed"
)

// EventMeta is carried by every event. Decide fills it deterministically from
// the command: EventID = "<command id>/<n>" (n = 1-based position of the event
// in the decision), Version = the aggregate's version + n, CommandID and
// CausationID = the command id, CorrelationID and OccurredAt = the command's
// CorrelationID and IssuedAt.
type EventMeta struct {
	EventID       string
	AggregateID   string
	Version       int64 // 1, 2, 3… per aggregate, without gaps
	CommandID     string
	CorrelationID string
	CausationID   string
	OccurredAt    time.Time
}

// Meta returns the metadata itself, so that events embedding it satisfy
// Event through their pointer.
func (m *EventMeta) Meta() *EventMeta { return m }

// Event is a fact about one aggregate. It is implemented by the pointer types
// *AccountOpened, *FundsDeposited, *FundsWithdrawn, *TransferDebited,
// *TransferCredited, *TransferRefunded and *AccountClosed.
type Event interface {
	// Meta returns the event's metadata (never nil for a non-nil event).
	Meta() *EventMeta
	// Type returns the Avro full name, e.g. "ledger.events.AccountOpened".
	// It is safe to call on a nil pointer.
	Type() string
}

// AccountOpened: the account was opened, with a zero balance.
type AccountOpened struct {
	EventMeta
	Owner          string
	Currency       string
	OverdraftLimit int64
}

// FundsDeposited: Amount was added; BalanceAfter is the resulting balance.
type FundsDeposited struct {
	EventMeta
	Amount       int64
	Currency     string
	BalanceAfter int64
	Reference    string
}

// FundsWithdrawn: Amount was taken; BalanceAfter is the resulting balance.
type FundsWithdrawn struct {
	EventMeta
	Amount       int64
	Currency     string
	BalanceAfter int64
	Reference    string
}

// TransferDebited: the source (this aggregate) was debited Amount for a
// transfer to ToAccountID; the transfer is in flight until the destination's
// TransferCredited or the source's TransferRefunded.
type TransferDebited struct {
	EventMeta
	TransferID   string
	ToAccountID  string
	Amount       int64
	Currency     string
	BalanceAfter int64
}

// TransferCredited: the destination (this aggregate) was credited Amount of a
// transfer from FromAccountID; the transfer is complete.
type TransferCredited struct {
	EventMeta
	TransferID    string
	FromAccountID string
	Amount        int64
	Currency      string
	BalanceAfter  int64
}

// TransferRefunded: the destination ToAccountID rejected the credit, and the
// source (this aggregate) got Amount back; Reason is the credit's rejection
// reason. The transfer is complete.
type TransferRefunded struct {
	EventMeta
	TransferID   string
	ToAccountID  string
	Amount       int64
	Currency     string
	BalanceAfter int64
	Reason       string
}

// AccountClosed: the account was closed (its balance was zero).
type AccountClosed struct {
	EventMeta
}

// Type implements Event.
func (*AccountOpened) Type() string { return TypeAccountOpened }

// Type implements Event.
func (*FundsDeposited) Type() string { return TypeFundsDeposited }

// Type implements Event.
func (*FundsWithdrawn) Type() string { return TypeFundsWithdrawn }

// Type implements Event.
func (*TransferDebited) Type() string { return TypeTransferDebited }

// Type implements Event.
func (*TransferCredited) Type() string { return TypeTransferCredited }

// Type implements Event.
func (*TransferRefunded) Type() string { return TypeTransferRefunded }

// Type implements Event.
func (*AccountClosed) Type() string { return TypeAccountClosed }
