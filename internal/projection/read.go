package projection

import (
	"context"
	"errors"
	"time"
)

// The read side's ports: what the query API reads, and the result types it
// answers with. The stores implement them (redissink the point lookups,
// chsink the history and analytics); no reader depends on a store's types.

// ChangeWatcher tells read-your-writes waits when an account's view may
// have changed, so that they read it again at once instead of polling.
// Notifications may be lost (a waiter still reads again now and then);
// the channel is closed on a change of the account, or when the watcher
// cannot tell (it lost its subscription). cancel releases it.
type ChangeWatcher interface {
	Watch(accountID string) (changed <-chan struct{}, cancel func())
}

// TransactionReader reads an account's recent transactions, newest first.
type TransactionReader interface {
	RecentTransactions(ctx context.Context, accountID string, limit int) ([]TxView, error)
}

// TransferReader reads a transfer's status; ok is false for an unknown transfer.
type TransferReader interface {
	Transfer(ctx context.Context, id string) (v TransferView, ok bool, err error)
}

// OutcomeReader reads a command's outcome; ok is false for an unknown (or
// expired) command. With account "" it is the id's first outcome. With an
// account it is the first outcome of the id for that account, or, when the
// id has none for it, the id's first outcome (whose AggregateID then tells
// the caller that the id belongs to another account). A command id is
// processed once per partition (see the processor's doc), so an id reused
// on an account of another partition has an outcome of its own.
type OutcomeReader interface {
	CommandOutcome(ctx context.Context, id, account string) (v Outcome, ok bool, err error)
}

// HistoryReader reads an account's events from the analytics store.
// History pages by an opaque store cursor ("" for the first page; next is ""
// after the last); BalanceAt's ok is false when no event of the account
// occurred at or before ts. Arguments are passed to the store as bound
// values. Safe for concurrent use. The ClickHouse view (chsink) implements it.
type HistoryReader interface {
	History(ctx context.Context, accountID string, from, to time.Time, cursor string, limit int) (rows []EventRow, next string, err error)
	BalanceAt(ctx context.Context, accountID string, ts time.Time) (balance, version int64, ok bool, err error)
}

// AnalyticsReader reads aggregates from the analytics store. An error
// matching ErrInvalidArgument is the caller's fault (400). Safe for
// concurrent use. The ClickHouse view (chsink) implements it.
type AnalyticsReader interface {
	Summary(ctx context.Context, from, to time.Time) ([]CurrencySummary, error)
	TimeSeries(ctx context.Context, metric string, interval time.Duration, from, to time.Time, currency string) ([]Point, error)
	TopAccounts(ctx context.Context, by string, limit int) ([]AccountRank, error)
}

// ErrInvalidArgument marks a reader call with a bad argument (limit, cursor,
// metric, interval, …); the query API answers it with 400.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrOverflow: a total does not fit the API's 64-bit integers.
var ErrOverflow = errors.New("the total is beyond a 64-bit integer of minor units")

// MaxLimit caps the page size of History and TopAccounts.
const MaxLimit = 1000

// EventRow is one event of an account's history.
type EventRow struct {
	EventID       string    `json:"event_id"`
	AccountID     string    `json:"account_id"`
	Version       int64     `json:"version"`
	Type          string    `json:"type"` // short name: FundsDeposited, …
	CommandID     string    `json:"command_id"`
	CorrelationID string    `json:"correlation_id"`
	CausationID   string    `json:"causation_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	Currency      string    `json:"currency,omitempty"`
	Amount        int64     `json:"amount"` // signed: + money in, − money out
	BalanceAfter  int64     `json:"balance_after"`
	TransferID    string    `json:"transfer_id,omitempty"`
	Counterparty  string    `json:"counterparty,omitempty"`
	Reference     string    `json:"reference,omitempty"`
	Reason        string    `json:"reason,omitempty"`
}

// CurrencySummary is the money movement of one currency in a period.
// Amounts are positive sums in minor units.
type CurrencySummary struct {
	Currency          string `json:"currency"`
	Deposits          int64  `json:"deposits"`
	Withdrawals       int64  `json:"withdrawals"`
	Transfers         int64  `json:"transfers"` // debited (sent) volume
	TransfersCredited int64  `json:"transfers_credited"`
	TransfersRefunded int64  `json:"transfers_refunded"`
	DepositCount      int64  `json:"deposit_count"`
	WithdrawalCount   int64  `json:"withdrawal_count"`
	TransferCount     int64  `json:"transfer_count"`
	CreditedCount     int64  `json:"credited_count"`
	RefundedCount     int64  `json:"refunded_count"`
	Events            int64  `json:"events"` // every event of the currency, opened and closed included
}

// Point is one bucket of a time series.
type Point struct {
	Time  time.Time `json:"time"`
	Value int64     `json:"value"`
}

// AccountRank is one account of a top list.
type AccountRank struct {
	AccountID string `json:"account_id"`
	Currency  string `json:"currency"`
	Value     int64  `json:"value"`
}

// Metrics lists the metric names TimeSeries accepts.
func Metrics() []string {
	return []string{"deposits", "withdrawals", "transfers", "transfers_credited", "transfers_refunded", "net",
		"deposit_count", "withdrawal_count", "transfer_count", "events"}
}
