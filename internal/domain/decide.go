package domain

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Decision is the outcome of Decide.
//
// Accepted: Events holds at least one event (versions following the state's)
// and Rejection is nil. Rejected: Events is empty and Rejection is set.
// Commands holds saga commands to route to other aggregates: the
// CreditTransfer of an accepted TransferFunds, or the RefundTransfer of a
// rejected CreditTransfer (so a rejected credit has both a Rejection and a
// command).
type Decision struct {
	Events    []Event
	Commands  []Command
	Rejection *Rejection
}

// Err returns the rejection as an error, or a true nil when the command was
// accepted (assigning a nil *Rejection to an error would not be nil).
func (d Decision) Err() error {
	if d.Rejection == nil {
		return nil
	}
	return d.Rejection
}

// Decide applies the rules of the Account aggregate to command c against
// state s, the current state of the aggregate c is addressed to (the zero
// Account if it has no events). It is pure and deterministic, and never
// panics: any input it cannot accept, including a nil command, a typed nil
// pointer, an unknown Command implementation or a state that belongs to
// another aggregate, is a rejection.
//
// Checks run in this order, the first failure deciding the reason: the shape
// of the command (invalid_command, naming the field; same_account for a
// transfer to itself), then expected_version (version_conflict), then the
// rules that depend on the state.
func Decide(s Account, c Command) Decision {
	switch c := c.(type) {
	case nil:
		return rejected(invalid("command is nil"))
	case *OpenAccount:
		if c == nil {
			return nilCommand(c)
		}
		return decideOpen(s, c)
	case *DepositFunds:
		if c == nil {
			return nilCommand(c)
		}
		return decideDeposit(s, c)
	case *WithdrawFunds:
		if c == nil {
			return nilCommand(c)
		}
		return decideWithdraw(s, c)
	case *TransferFunds:
		if c == nil {
			return nilCommand(c)
		}
		return decideTransfer(s, c)
	case *CreditTransfer:
		if c == nil {
			return nilCommand(c)
		}
		return decideCredit(s, c)
	case *RefundTransfer:
		if c == nil {
			return nilCommand(c)
		}
		return decideRefund(s, c)
	case *CloseAccount:
		if c == nil {
			return nilCommand(c)
		}
		return decideClose(s, c)
	default:
		// Do not call c's methods: a foreign implementation may panic.
		return rejected(invalid(fmt.Sprintf("unknown command type %T", c)))
	}
}

func decideOpen(s Account, c *OpenAccount) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	switch {
	case strings.TrimSpace(c.Owner) == "":
		return rejected(invalid("owner is required"))
	case !ValidCurrency(c.Currency):
		return rejected(badCurrency(c.Currency))
	case c.OverdraftLimit < 0:
		return rejected(invalid("overdraft_limit must be >= 0, got " + strconv.FormatInt(c.OverdraftLimit, 10)))
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if s.Status != StatusNone {
		return rejected(&Rejection{ReasonAccountExists, fmt.Sprintf("account %q already exists (%s)", Clip(s.ID), s.Status)})
	}
	return accepted(&AccountOpened{
		EventMeta:      meta(s, &c.Envelope, 1),
		Owner:          c.Owner,
		Currency:       c.Currency,
		OverdraftLimit: c.OverdraftLimit,
	})
}

func decideDeposit(s Account, c *DepositFunds) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkAmount(c.Amount); r != nil {
		return rejected(r)
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := requireOpen(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := checkCredit(s, c.Amount); r != nil {
		return rejected(r)
	}
	return accepted(&FundsDeposited{
		EventMeta:    meta(s, &c.Envelope, 1),
		Amount:       c.Amount,
		Currency:     s.Currency,
		BalanceAfter: s.Balance + c.Amount,
		Reference:    c.Reference,
	})
}

func decideWithdraw(s Account, c *WithdrawFunds) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkAmount(c.Amount); r != nil {
		return rejected(r)
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := requireOpen(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := checkDebit(s, c.Amount); r != nil {
		return rejected(r)
	}
	return accepted(&FundsWithdrawn{
		EventMeta:    meta(s, &c.Envelope, 1),
		Amount:       c.Amount,
		Currency:     s.Currency,
		BalanceAfter: s.Balance - c.Amount,
		Reference:    c.Reference,
	})
}

func decideTransfer(s Account, c *TransferFunds) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkTransferShape(&c.Envelope, c.TransferID, c.FromAccountID, c.ToAccountID, c.FromAccountID, "from_account_id"); r != nil {
		return rejected(r)
	}
	if r := checkAmount(c.Amount); r != nil {
		return rejected(r)
	}
	if c.FromAccountID == c.ToAccountID {
		return rejected(&Rejection{ReasonSameAccount, fmt.Sprintf("from_account_id and to_account_id are both %q", Clip(c.ToAccountID))})
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := requireOpen(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := checkDebit(s, c.Amount); r != nil {
		return rejected(r)
	}
	debited := &TransferDebited{
		EventMeta:    meta(s, &c.Envelope, 1),
		TransferID:   c.TransferID,
		ToAccountID:  c.ToAccountID,
		Amount:       c.Amount,
		Currency:     s.Currency,
		BalanceAfter: s.Balance - c.Amount,
	}
	credit := &CreditTransfer{
		Envelope: Envelope{
			CommandID:     debited.EventID + CreditSuffix,
			AggregateID:   c.ToAccountID,
			CorrelationID: c.CorrelationID,
			IssuedAt:      debited.OccurredAt,
		},
		TransferID:    c.TransferID,
		FromAccountID: c.FromAccountID,
		ToAccountID:   c.ToAccountID,
		Amount:        c.Amount,
		Currency:      s.Currency,
	}
	return Decision{Events: []Event{debited}, Commands: []Command{credit}}
}

// decideCredit credits the destination of a transfer. A malformed credit
// (which Decide never issues) is rejected without a refund: refunding a
// forged or corrupt command would create money, and there may be nowhere
// valid to send it. Every other rejection comes with the RefundTransfer that
// returns the in-flight amount to the source.
func decideCredit(s Account, c *CreditTransfer) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkTransferShape(&c.Envelope, c.TransferID, c.FromAccountID, c.ToAccountID, c.ToAccountID, "to_account_id"); r != nil {
		return rejected(r)
	}
	if c.FromAccountID == c.ToAccountID {
		return rejected(invalid("from_account_id and to_account_id must differ"))
	}
	if r := checkAmount(c.Amount); r != nil {
		return rejected(r)
	}
	if !ValidCurrency(c.Currency) {
		return rejected(badCurrency(c.Currency))
	}

	r := checkVersion(s, &c.Envelope)
	if r == nil {
		r = requireOpen(s, &c.Envelope)
	}
	if r == nil && c.Currency != s.Currency {
		r = &Rejection{ReasonCurrencyMismatch, fmt.Sprintf("transfer is in %s, account %q is in %s", c.Currency, Clip(s.ID), s.Currency)}
	}
	if r == nil {
		r = checkCredit(s, c.Amount)
	}
	if r != nil {
		refund := &RefundTransfer{
			Envelope: Envelope{
				CommandID:     c.CommandID + RefundSuffix,
				AggregateID:   c.FromAccountID,
				CorrelationID: c.CorrelationID,
				// No event triggered the refund; the credit's own time is
				// the debit's occurred_at, the closest deterministic instant.
				IssuedAt: c.IssuedAt.Round(0),
			},
			TransferID:    c.TransferID,
			FromAccountID: c.FromAccountID,
			ToAccountID:   c.ToAccountID,
			Amount:        c.Amount,
			Currency:      c.Currency,
			Reason:        string(r.Reason),
		}
		return Decision{Commands: []Command{refund}, Rejection: r}
	}
	return accepted(&TransferCredited{
		EventMeta:     meta(s, &c.Envelope, 1),
		TransferID:    c.TransferID,
		FromAccountID: c.FromAccountID,
		Amount:        c.Amount,
		Currency:      c.Currency,
		BalanceAfter:  s.Balance + c.Amount,
	})
}

// decideRefund gives a rejected credit back to the source. It applies to an
// open or a closed source alike. The rejections it can still produce are
// shape errors, version_conflict (only if the issuer set expected_version,
// which Decide never does), account_not_found and currency_mismatch (a refund
// Decide issued always targets the account it debited, in its currency), and
// invalid_command when the balance would overflow int64.
//
// On overflow the refund is rejected and nothing is emitted. That is the only
// choice that conserves money: saturating or wrapping would destroy or
// invent it, and bouncing the money anywhere else would hand it to someone
// it does not belong to. The amount stays in flight (debited from the source,
// never credited), visible as a pending transfer and a rejected command
// result, for an operator to settle once the source's balance has come down.
// An account would need more than 9.2e18 minor units for this to happen.
func decideRefund(s Account, c *RefundTransfer) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkTransferShape(&c.Envelope, c.TransferID, c.FromAccountID, c.ToAccountID, c.FromAccountID, "from_account_id"); r != nil {
		return rejected(r)
	}
	if c.FromAccountID == c.ToAccountID {
		return rejected(invalid("from_account_id and to_account_id must differ"))
	}
	if r := checkAmount(c.Amount); r != nil {
		return rejected(r)
	}
	if !ValidCurrency(c.Currency) {
		return rejected(badCurrency(c.Currency))
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if s.Status == StatusNone {
		return rejected(notFound(&c.Envelope))
	}
	if c.Currency != s.Currency {
		return rejected(&Rejection{ReasonCurrencyMismatch, fmt.Sprintf("refund is in %s, account %q is in %s", c.Currency, Clip(s.ID), s.Currency)})
	}
	if r := checkCredit(s, c.Amount); r != nil {
		return rejected(r)
	}
	return accepted(&TransferRefunded{
		EventMeta:    meta(s, &c.Envelope, 1),
		TransferID:   c.TransferID,
		ToAccountID:  c.ToAccountID,
		Amount:       c.Amount,
		Currency:     c.Currency,
		BalanceAfter: s.Balance + c.Amount,
		Reason:       c.Reason,
	})
}

func decideClose(s Account, c *CloseAccount) Decision {
	if r := checkEnvelope(s, c); r != nil {
		return rejected(r)
	}
	if r := checkVersion(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if r := requireOpen(s, &c.Envelope); r != nil {
		return rejected(r)
	}
	if s.Balance != 0 {
		return rejected(&Rejection{ReasonBalanceNotZero, "balance is " + strconv.FormatInt(s.Balance, 10)})
	}
	return accepted(&AccountClosed{EventMeta: meta(s, &c.Envelope, 1)})
}

// checkEnvelope validates what every command carries, that every field is
// within the input bounds (CheckBounds), and that s is the state of the
// aggregate the command is addressed to.
func checkEnvelope(s Account, c Command) *Rejection {
	e, internal := c.Env(), IsInternal(c)
	if r := checkRequired(s, e, internal); r != nil {
		return r
	}
	if b := CheckBounds(c); b != nil {
		return invalid(b.Error())
	}
	return nil
}

func checkRequired(s Account, e *Envelope, internal bool) *Rejection {
	switch {
	case e.CommandID == "":
		return invalid("command_id is required")
	case !internal && ReservedCommandID(e.CommandID):
		return invalid(ReservedCommandIDMessage(e.CommandID))
	case e.AggregateID == "":
		return invalid("aggregate_id is required")
	case e.IssuedAt.IsZero():
		return invalid("issued_at is required")
	case e.ExpectedVersion != nil && *e.ExpectedVersion < 0:
		return invalid("expected_version must be >= 0, got " + strconv.FormatInt(*e.ExpectedVersion, 10))
	case s.Status != StatusNone && s.ID != e.AggregateID:
		// A routing bug in the caller, not something to build events on.
		return invalid(fmt.Sprintf("aggregate_id %q does not match the state of account %q", Clip(e.AggregateID), Clip(s.ID)))
	case s.Version < 0 || s.Version == math.MaxInt64:
		return invalid("aggregate version " + strconv.FormatInt(s.Version, 10) + " is out of range")
	}
	return nil
}

// checkTransferShape validates the ids of a transfer-family command; the
// account named by selfField (whose value is self) must be the aggregate.
func checkTransferShape(e *Envelope, transferID, from, to, self, selfField string) *Rejection {
	switch {
	case transferID == "":
		return invalid("transfer_id is required")
	case from == "":
		return invalid("from_account_id is required")
	case to == "":
		return invalid("to_account_id is required")
	case self != e.AggregateID:
		return invalid(fmt.Sprintf("%s %q must equal aggregate_id %q", selfField, Clip(self), Clip(e.AggregateID)))
	}
	return nil
}

func checkAmount(amount int64) *Rejection {
	if amount <= 0 {
		return invalid("amount must be > 0, got " + strconv.FormatInt(amount, 10))
	}
	return nil
}

func checkVersion(s Account, e *Envelope) *Rejection {
	if e.ExpectedVersion != nil && *e.ExpectedVersion != s.Version {
		return &Rejection{ReasonVersionConflict, fmt.Sprintf("expected version %d, current version is %d", *e.ExpectedVersion, s.Version)}
	}
	return nil
}

func requireOpen(s Account, e *Envelope) *Rejection {
	switch s.Status {
	case StatusOpen:
		return nil
	case StatusNone:
		return notFound(e)
	}
	return &Rejection{ReasonAccountClosed, fmt.Sprintf("account %q is %s", Clip(s.ID), s.Status)}
}

func notFound(e *Envelope) *Rejection {
	return &Rejection{ReasonAccountNotFound, fmt.Sprintf("account %q not found", Clip(e.AggregateID))}
}

// checkCredit rejects adding amount (> 0) to the balance if the sum would
// overflow int64.
func checkCredit(s Account, amount int64) *Rejection {
	if s.Balance > math.MaxInt64-amount {
		return invalid(fmt.Sprintf("amount %d would overflow the balance %d", amount, s.Balance))
	}
	return nil
}

// checkDebit rejects taking amount (> 0) from the balance if the result would
// fall below −OverdraftLimit. It is written so that nothing overflows: the
// floor is in [−MaxInt64, 0], so floor+amount cannot overflow, and a balance
// that passes leaves balance−amount ≥ floor.
func checkDebit(s Account, amount int64) *Rejection {
	floor := -max(s.OverdraftLimit, 0)
	if s.Balance < floor+amount {
		return &Rejection{ReasonInsufficientFunds, fmt.Sprintf("balance %d minus amount %d is below the overdraft floor %d", s.Balance, amount, floor)}
	}
	return nil
}

// meta builds the metadata of the n-th event (1-based) decided for e.
func meta(s Account, e *Envelope, n int) EventMeta {
	return EventMeta{
		EventID:       EventID(e.AggregateID, s.Version+int64(n)),
		AggregateID:   e.AggregateID,
		Version:       s.Version + int64(n),
		CommandID:     e.CommandID,
		CorrelationID: e.CorrelationID,
		CausationID:   e.CommandID,
		// Round(0) drops a monotonic clock reading (meaningless in a stored
		// fact) and keeps the wall time exactly.
		OccurredAt: e.IssuedAt.Round(0),
	}
}

func accepted(e Event) Decision { return Decision{Events: []Event{e}} }

func rejected(r *Rejection) Decision { return Decision{Rejection: r} }

func invalid(msg string) *Rejection { return &Rejection{ReasonInvalidCommand, msg} }

func nilCommand(c Command) Decision {
	return rejected(invalid("command is a nil " + c.Type()))
}

func badCurrency(c string) *Rejection {
	return invalid(fmt.Sprintf("currency must match %s, got %q", CurrencyPattern, Clip(c)))
}
