package codec

import "time"

// The one place that knows what each event type means. Every reader of the
// events topic (the views, the analytics rows, the audit fold) works on
// Facts instead of switching over the generated types, so a new event type
// is one case here (and its conversion from the domain in the processor);
// TestEveryEventHasFacts fails until it is added.

// TransferStep is what a transfer event does to its transfer.
type TransferStep int

// Transfer steps, in the order a transfer goes through them.
const (
	NoTransfer TransferStep = iota
	TransferDebitedStep
	TransferCreditedStep
	TransferRefundedStep
)

// EventEnvelope is what every event carries.
type EventEnvelope struct {
	EventID, AggregateID       string
	Version                    int64
	CommandID                  string
	CorrelationID, CausationID string
	OccurredAt                 time.Time
}

// Facts is one event, flattened.
type Facts struct {
	// Name is the Avro full name (ledger.events.FundsDeposited), Short the
	// record name (FundsDeposited).
	Name, Short string
	EventEnvelope
	// Money: the event moves money; Amount is signed (+ into the account,
	// − out of it) and BalanceAfter is the balance it leaves.
	Money        bool
	Amount       int64
	BalanceAfter int64
	// Currency of the account (AccountOpened, money events); "" for
	// AccountClosed.
	Currency string
	// Transfer events: the transfer, its step, and the other account.
	Transfer     TransferStep
	TransferID   string
	Counterparty string
	Reference    string
	Reason       string // TransferRefunded
	// Open: AccountOpened, with the owner and overdraft limit it sets.
	Open           bool
	Owner          string
	OverdraftLimit int64
	// Close: AccountClosed.
	Close bool
}

// FactsOf returns the facts of a decoded event (a pointer to a generated
// event type); ok is false for anything else.
func FactsOf(v any) (f Facts, ok bool) {
	env := func(short, id, agg string, ver int64, cmd, corr, cause string, at time.Time) {
		f.Name, f.Short = "ledger.events."+short, short
		f.EventEnvelope = EventEnvelope{id, agg, ver, cmd, corr, cause, at}
	}
	money := func(cur string, amount, after int64) {
		f.Money, f.Currency, f.Amount, f.BalanceAfter = true, cur, amount, after
	}
	switch x := v.(type) {
	case *AccountOpened:
		env("AccountOpened", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		f.Open, f.Owner, f.Currency, f.OverdraftLimit = true, x.Owner, x.Currency, x.OverdraftLimit
	case *FundsDeposited:
		env("FundsDeposited", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		money(x.Currency, x.Amount, x.BalanceAfter)
		f.Reference = x.Reference
	case *FundsWithdrawn:
		env("FundsWithdrawn", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		money(x.Currency, -x.Amount, x.BalanceAfter)
		f.Reference = x.Reference
	case *TransferDebited:
		env("TransferDebited", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		money(x.Currency, -x.Amount, x.BalanceAfter)
		f.Transfer, f.TransferID, f.Counterparty = TransferDebitedStep, x.TransferID, x.ToAccountID
	case *TransferCredited:
		env("TransferCredited", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		money(x.Currency, x.Amount, x.BalanceAfter)
		f.Transfer, f.TransferID, f.Counterparty = TransferCreditedStep, x.TransferID, x.FromAccountID
	case *TransferRefunded:
		env("TransferRefunded", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		money(x.Currency, x.Amount, x.BalanceAfter)
		f.Transfer, f.TransferID, f.Counterparty, f.Reason = TransferRefundedStep, x.TransferID, x.ToAccountID, x.Reason
	case *AccountClosed:
		env("AccountClosed", x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt)
		f.Close = true
	default:
		return Facts{}, false
	}
	return f, true
}

// Magnitude is |Amount|.
func (f Facts) Magnitude() int64 {
	if f.Amount < 0 {
		return -f.Amount
	}
	return f.Amount
}

// Redact blanks, in place, the personal data a decoded record carries (a
// pointer to a generated event, snapshot or command result): the owner,
// the issuer's free-text reference and the caller's correlation id. Ids,
// versions, amounts, balances, currencies and times stay, so whatever folds
// the record folds it as before. It reports whether anything changed; ok is
// false for a value it does not know.
func Redact(v any) (changed, ok bool) {
	blank := func(fields ...*string) {
		for _, f := range fields {
			if *f != "" {
				*f, changed = "", true
			}
		}
	}
	switch x := v.(type) {
	case *AccountOpened:
		blank(&x.Owner, &x.CorrelationID)
	case *FundsDeposited:
		blank(&x.Reference, &x.CorrelationID)
	case *FundsWithdrawn:
		blank(&x.Reference, &x.CorrelationID)
	case *TransferDebited:
		blank(&x.CorrelationID)
	case *TransferCredited:
		blank(&x.CorrelationID)
	case *TransferRefunded:
		blank(&x.CorrelationID)
	case *AccountClosed:
		blank(&x.CorrelationID)
	case *AccountSnapshot:
		blank(&x.Owner)
	case *CommandResult:
		blank(&x.CorrelationID)
	default:
		return false, false
	}
	return changed, true
}
