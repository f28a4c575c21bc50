// Package workload generates realistic, reproducible ledger command streams:
// accounts in several currencies, deposits, withdrawals (some overdrawing),
// transfers (some to missing or other-currency accounts, so they are
// refunded), duplicates of earlier commands, stale expected versions and
// closes. Crash, rebalance and load tests, benchmarks and the demo use it.
package workload

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

// Command is one generated command: the Kafka key (its aggregate id) and a
// pointer to a codec command type.
type Command struct {
	Key   string
	Value any
	ID    string
	// Duplicate marks a resend of an earlier command id (same content).
	Duplicate bool
}

// Options shape a stream.
type Options struct {
	Seed       uint64
	Accounts   int      // accounts opened first, in order
	Commands   int      // commands after the opens
	Currencies []string // default EUR, USD, GBP
	// Rates of special commands among the Commands, each in [0,1].
	TransferRate  float64 // default 0.3
	WithdrawRate  float64 // default 0.2 (some overdraw and are rejected)
	DuplicateRate float64 // default 0.02: resend an earlier command id
	BadTargetRate float64 // default 0.05 of transfers: missing destination (refunded)
	CloseRate     float64 // default 0.005: close attempts (mostly rejected: balance ≠ 0)
	IDPrefix      string  // prefixes every id, so runs on one topic do not collide
	Start         time.Time
}

func (o *Options) defaults() {
	if len(o.Currencies) == 0 {
		o.Currencies = []string{"EUR", "USD", "GBP"}
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.TransferRate, 0.3)
	def(&o.WithdrawRate, 0.2)
	def(&o.DuplicateRate, 0.02)
	def(&o.BadTargetRate, 0.05)
	def(&o.CloseRate, 0.005)
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// Generate returns Accounts opens followed by Commands mixed commands, the
// same for the same Options.
func Generate(o Options) []Command {
	o.defaults()
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	out := make([]Command, 0, o.Accounts+o.Commands)
	at := o.Start
	n := 0
	next := func() (string, time.Time) {
		n++
		at = at.Add(time.Millisecond)
		return fmt.Sprintf("%scmd-%d", o.IDPrefix, n), at
	}
	acct := func(i int) string { return fmt.Sprintf("%sacc-%d", o.IDPrefix, i) }
	for i := 0; i < o.Accounts; i++ {
		id, ts := next()
		cur := o.Currencies[i%len(o.Currencies)]
		out = append(out, Command{Key: acct(i), ID: id, Value: &codec.OpenAccount{
			CommandID: id, AggregateID: acct(i), CorrelationID: id, IssuedAt: ts,
			Owner: fmt.Sprintf("owner %d", i), Currency: cur, OverdraftLimit: int64(r.IntN(3)) * 5_000,
		}})
	}
	if o.Accounts == 0 {
		return out
	}
	for len(out) < o.Accounts+o.Commands {
		if len(out) > o.Accounts && r.Float64() < o.DuplicateRate {
			prev := out[o.Accounts+r.IntN(len(out)-o.Accounts)]
			prev.Duplicate = true
			out = append(out, prev)
			continue
		}
		id, ts := next()
		ai := r.IntN(o.Accounts)
		a := acct(ai)
		amount := int64(1+r.IntN(500)) * 100
		p := r.Float64()
		switch {
		case p < o.CloseRate:
			out = append(out, Command{Key: a, ID: id, Value: &codec.CloseAccount{
				CommandID: id, AggregateID: a, CorrelationID: id, IssuedAt: ts}})
		case p < o.CloseRate+o.TransferRate:
			// Mostly to an account of the same currency (accounts are opened
			// round-robin over the currencies); the rest are refunded.
			to := acct(r.IntN(o.Accounts))
			if nc := len(o.Currencies); r.Float64() < 0.85 && o.Accounts > nc {
				to = acct((r.IntN(o.Accounts/nc)*nc + ai%nc) % o.Accounts)
			}
			if r.Float64() < o.BadTargetRate {
				to = o.IDPrefix + "missing-" + id
			}
			out = append(out, Command{Key: a, ID: id, Value: &codec.TransferFunds{
				CommandID: id, AggregateID: a, CorrelationID: id, IssuedAt: ts,
				TransferID: "tr-" + id, FromAccountID: a, ToAccountID: to, Amount: amount}})
		case p < o.CloseRate+o.TransferRate+o.WithdrawRate:
			out = append(out, Command{Key: a, ID: id, Value: &codec.WithdrawFunds{
				CommandID: id, AggregateID: a, CorrelationID: id, IssuedAt: ts, Amount: amount, Reference: "atm"}})
		default:
			out = append(out, Command{Key: a, ID: id, Value: &codec.DepositFunds{
				CommandID: id, AggregateID: a, CorrelationID: id, IssuedAt: ts, Amount: amount * 2, Reference: "salary"}})
		}
	}
	return out
}
