package processor

import (
	"fmt"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

// toCommand converts a decoded codec record into a domain command; ok is
// false when v is not a command (an event, a snapshot, a result).
func toCommand(v any) (domain.Command, bool) {
	switch c := v.(type) {
	case *codec.OpenAccount:
		return &domain.OpenAccount{
			Envelope:       envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			Owner:          c.Owner,
			Currency:       c.Currency,
			OverdraftLimit: c.OverdraftLimit,
		}, true
	case *codec.DepositFunds:
		return &domain.DepositFunds{
			Envelope:  envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			Amount:    c.Amount,
			Reference: c.Reference,
		}, true
	case *codec.WithdrawFunds:
		return &domain.WithdrawFunds{
			Envelope:  envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			Amount:    c.Amount,
			Reference: c.Reference,
		}, true
	case *codec.TransferFunds:
		return &domain.TransferFunds{
			Envelope:      envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			TransferID:    c.TransferID,
			FromAccountID: c.FromAccountID,
			ToAccountID:   c.ToAccountID,
			Amount:        c.Amount,
			Reference:     c.Reference,
		}, true
	case *codec.CreditTransfer:
		return &domain.CreditTransfer{
			Envelope:      envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			TransferID:    c.TransferID,
			FromAccountID: c.FromAccountID,
			ToAccountID:   c.ToAccountID,
			Amount:        c.Amount,
			Currency:      c.Currency,
		}, true
	case *codec.RefundTransfer:
		return &domain.RefundTransfer{
			Envelope:      envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
			TransferID:    c.TransferID,
			FromAccountID: c.FromAccountID,
			ToAccountID:   c.ToAccountID,
			Amount:        c.Amount,
			Currency:      c.Currency,
			Reason:        c.Reason,
		}, true
	case *codec.CloseAccount:
		return &domain.CloseAccount{
			Envelope: envelope(c.CommandID, c.AggregateID, c.CorrelationID, c.ExpectedVersion, c.IssuedAt),
		}, true
	}
	return nil, false
}

func envelope(id, agg, corr string, expected *int64, issued time.Time) domain.Envelope {
	return domain.Envelope{CommandID: id, AggregateID: agg, CorrelationID: corr, ExpectedVersion: expected, IssuedAt: issued}
}

// fromSagaCommand converts a saga command decided by the domain into its
// codec record. Decide only ever issues CreditTransfer and RefundTransfer.
func fromSagaCommand(c domain.Command) (any, error) {
	switch c := c.(type) {
	case *domain.CreditTransfer:
		return &codec.CreditTransfer{
			CommandID: c.CommandID, AggregateID: c.AggregateID, ExpectedVersion: c.ExpectedVersion,
			CorrelationID: c.CorrelationID, IssuedAt: c.IssuedAt,
			TransferID: c.TransferID, FromAccountID: c.FromAccountID, ToAccountID: c.ToAccountID,
			Amount: c.Amount, Currency: c.Currency,
		}, nil
	case *domain.RefundTransfer:
		return &codec.RefundTransfer{
			CommandID: c.CommandID, AggregateID: c.AggregateID, ExpectedVersion: c.ExpectedVersion,
			CorrelationID: c.CorrelationID, IssuedAt: c.IssuedAt,
			TransferID: c.TransferID, FromAccountID: c.FromAccountID, ToAccountID: c.ToAccountID,
			Amount: c.Amount, Currency: c.Currency, Reason: c.Reason,
		}, nil
	}
	return nil, fmt.Errorf("saga command %T is not routable", c)
}

// fromEvent converts a domain event into its codec record.
func fromEvent(e domain.Event) (any, error) {
	switch e := e.(type) {
	case *domain.AccountOpened:
		m := e.EventMeta
		return &codec.AccountOpened{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			Owner: e.Owner, Currency: e.Currency, OverdraftLimit: e.OverdraftLimit,
		}, nil
	case *domain.FundsDeposited:
		m := e.EventMeta
		return &codec.FundsDeposited{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			Amount: e.Amount, Currency: e.Currency, BalanceAfter: e.BalanceAfter, Reference: e.Reference,
		}, nil
	case *domain.FundsWithdrawn:
		m := e.EventMeta
		return &codec.FundsWithdrawn{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			Amount: e.Amount, Currency: e.Currency, BalanceAfter: e.BalanceAfter, Reference: e.Reference,
		}, nil
	case *domain.TransferDebited:
		m := e.EventMeta
		return &codec.TransferDebited{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			TransferID: e.TransferID, ToAccountID: e.ToAccountID, Amount: e.Amount, Currency: e.Currency,
			BalanceAfter: e.BalanceAfter,
		}, nil
	case *domain.TransferCredited:
		m := e.EventMeta
		return &codec.TransferCredited{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			TransferID: e.TransferID, FromAccountID: e.FromAccountID, Amount: e.Amount, Currency: e.Currency,
			BalanceAfter: e.BalanceAfter,
		}, nil
	case *domain.TransferRefunded:
		m := e.EventMeta
		return &codec.TransferRefunded{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
			TransferID: e.TransferID, ToAccountID: e.ToAccountID, Amount: e.Amount, Currency: e.Currency,
			BalanceAfter: e.BalanceAfter, Reason: e.Reason,
		}, nil
	case *domain.AccountClosed:
		m := e.EventMeta
		return &codec.AccountClosed{
			EventID: m.EventID, AggregateID: m.AggregateID, Version: m.Version, CommandID: m.CommandID,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, OccurredAt: m.OccurredAt,
		}, nil
	}
	return nil, fmt.Errorf("event %T has no codec type", e)
}

// toSnapshot is the snapshot record of an opened account.
func toSnapshot(a domain.Account) *codec.AccountSnapshot {
	status := codec.AccountStatusOpen
	if a.Status == domain.StatusClosed {
		status = codec.AccountStatusClosed
	}
	// The owner is personal data the processor never decides on: a
	// snapshot leaves it out, so an erasure has nothing to undo here.
	return &codec.AccountSnapshot{
		AggregateID:    a.ID,
		Version:        a.Version,
		Currency:       a.Currency,
		Balance:        a.Balance,
		OverdraftLimit: a.OverdraftLimit,
		Status:         status,
		UpdatedAt:      a.UpdatedAt,
	}
}

// fromSnapshot is the account a snapshot records.
func fromSnapshot(s *codec.AccountSnapshot) (domain.Account, error) {
	a := domain.Account{
		ID:             s.AggregateID,
		Owner:          s.Owner,
		Currency:       domain.InternCurrency(s.Currency), // no allocation per restored account
		Balance:        s.Balance,
		OverdraftLimit: s.OverdraftLimit,
		Version:        s.Version,
		UpdatedAt:      s.UpdatedAt,
	}
	switch s.Status {
	case codec.AccountStatusOpen:
		a.Status = domain.StatusOpen
	case codec.AccountStatusClosed:
		a.Status = domain.StatusClosed
	default:
		return domain.Account{}, fmt.Errorf("snapshot of %q: unknown status %q", s.AggregateID, s.Status)
	}
	if a.ID == "" || a.Version < 1 {
		return domain.Account{}, fmt.Errorf("snapshot of %q: empty id or version %d < 1", s.AggregateID, s.Version)
	}
	return a, nil
}
