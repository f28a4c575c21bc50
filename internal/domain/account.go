package domain

import (
	"strconv"
	"strings"
	"time"
)

// Status is the lifecycle state of an account.
type Status uint8

const (
	// StatusNone is the zero value: the account was never opened.
	StatusNone Status = iota
	// StatusOpen accepts deposits, withdrawals and transfers.
	StatusOpen
	// StatusClosed is final; only refunds of in-flight transfers still apply.
	StatusClosed
)

// String returns "none", "open" or "closed" (the lowercase names the query
// API uses), or "Status(n)" for an out-of-range value.
func (s Status) String() string {
	switch s {
	case StatusNone:
		return "none"
	case StatusOpen:
		return "open"
	case StatusClosed:
		return "closed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Account is the state of one account aggregate, rebuilt by folding its
// events (or restored from a snapshot). The zero value is an account that was
// never opened. Processors hold one per aggregate in memory, so it is kept
// small: 104 bytes plus its three strings, which Evolve copies so that they
// never pin a larger decode buffer.
type Account struct {
	ID       string // aggregate id; empty until opened
	Owner    string
	Currency string // ISO-4217, fixed at opening
	// Balance in minor units. A debit never takes it below −OverdraftLimit; a
	// refund can leave money on a closed account.
	Balance        int64
	OverdraftLimit int64 // ≥ 0
	Status         Status
	Version        int64     // version of the last applied event; 0 if none
	UpdatedAt      time.Time // OccurredAt of the last applied event
}

// Evolve returns s with e applied. It trusts e (events are facts already
// decided): balances are taken from the events' BalanceAfter rather than
// recomputed, Version becomes e's version and UpdatedAt its OccurredAt. A nil
// or unknown event leaves s unchanged. Evolve never fails and never panics.
func Evolve(s Account, e Event) Account {
	switch e := e.(type) {
	case *AccountOpened:
		if e == nil {
			return s
		}
		s.ID = strings.Clone(e.AggregateID)
		s.Owner = strings.Clone(e.Owner)
		s.Currency = InternCurrency(e.Currency)
		s.OverdraftLimit = e.OverdraftLimit
		s.Balance = 0
		s.Status = StatusOpen
	case *FundsDeposited:
		if e == nil {
			return s
		}
		s.Balance = e.BalanceAfter
	case *FundsWithdrawn:
		if e == nil {
			return s
		}
		s.Balance = e.BalanceAfter
	case *TransferDebited:
		if e == nil {
			return s
		}
		s.Balance = e.BalanceAfter
	case *TransferCredited:
		if e == nil {
			return s
		}
		s.Balance = e.BalanceAfter
	case *TransferRefunded:
		if e == nil {
			return s
		}
		s.Balance = e.BalanceAfter
	case *AccountClosed:
		if e == nil {
			return s
		}
		s.Status = StatusClosed
	default:
		return s
	}
	m := e.Meta()
	s.Version = m.Version
	s.UpdatedAt = m.OccurredAt
	return s
}

// Fold applies events to s in order (Evolve on each) and returns the result.
func Fold(s Account, events []Event) Account {
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

// InternCurrency returns a string that does not share memory with c: a
// constant for the common codes (no allocation at all), a copy otherwise.
func InternCurrency(c string) string {
	switch c {
	case "EUR":
		return "EUR"
	case "USD":
		return "USD"
	case "GBP":
		return "GBP"
	case "JPY":
		return "JPY"
	case "CHF":
		return "CHF"
	case "CAD":
		return "CAD"
	case "AUD":
		return "AUD"
	case "CNY":
		return "CNY"
	case "SEK":
		return "SEK"
	case "NOK":
		return "NOK"
	case "DKK":
		return "DKK"
	case "PLN":
		return "PLN"
	}
	return strings.Clone(c)
}
