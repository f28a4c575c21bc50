package domain

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	src = "acc-1" // a transfer's source
	dst = "acc-2" // a transfer's destination
)

// invalidEnvelopeCases are the shape errors every command type shares; mk
// builds a command of the type under test around an envelope.
func invalidEnvelopeCases(state Account, agg string, mk func(Envelope) Command, internal bool) []decideCase {
	noIssued := env("c9", agg)
	noIssued.IssuedAt = time.Time{}
	cases := []decideCase{
		{name: "empty command_id", state: state, cmd: mk(env("", agg)), reason: ReasonInvalidCommand, msgHint: "command_id"},
		{name: "empty aggregate_id", state: state, cmd: mk(env("c9", "")), reason: ReasonInvalidCommand, msgHint: "aggregate_id"},
		{name: "zero issued_at", state: state, cmd: mk(noIssued), reason: ReasonInvalidCommand, msgHint: "issued_at"},
		{name: "negative expected_version", state: state, cmd: mk(envV("c9", agg, -1)), reason: ReasonInvalidCommand, msgHint: "expected_version"},
	}
	if !internal {
		cases = append(cases,
			decideCase{name: "reserved /credit suffix", state: state, cmd: mk(env("t1/credit", agg)), reason: ReasonInvalidCommand, msgHint: "command_id"},
			decideCase{name: "reserved /refund suffix", state: state, cmd: mk(env("x/refund", agg)), reason: ReasonInvalidCommand, msgHint: "command_id"},
		)
	}
	if state.Status != StatusNone {
		other := state
		other.ID = "acc-other"
		cases = append(cases, decideCase{name: "state of another aggregate", state: other, cmd: mk(env("c9", agg)), reason: ReasonInvalidCommand, msgHint: "aggregate_id"})
		exhausted := state
		exhausted.Version = math.MaxInt64
		cases = append(cases, decideCase{name: "version exhausted", state: exhausted, cmd: mk(env("c9", agg)), reason: ReasonInvalidCommand, msgHint: "version"})
	}
	return cases
}

func TestDecide(t *testing.T) {
	cov := &coverage{reasons: map[Reason]bool{}, conflicts: map[string]bool{}}
	total := 0
	for _, tbl := range []struct {
		name  string
		cases []decideCase
	}{
		{"OpenAccount", openCases()},
		{"DepositFunds", depositCases()},
		{"WithdrawFunds", withdrawCases()},
		{"TransferFunds", transferCases()},
		{"CreditTransfer", creditCases()},
		{"RefundTransfer", refundCases()},
		{"CloseAccount", closeCases()},
		{"Malformed", malformedCases()},
	} {
		total += len(tbl.cases)
		t.Run(tbl.name, func(t *testing.T) { runDecideCases(t, cov, tbl.cases) })
	}
	if cov.cases != total {
		return // filtered with -run: the coverage below would be partial
	}
	for _, r := range []Reason{
		ReasonInvalidCommand, ReasonAccountNotFound, ReasonAccountExists, ReasonAccountClosed,
		ReasonInsufficientFunds, ReasonCurrencyMismatch, ReasonBalanceNotZero, ReasonVersionConflict,
		ReasonSameAccount,
	} {
		if !cov.reasons[r] {
			t.Errorf("no table case produces %s", r)
		}
	}
	for _, typ := range []string{
		TypeOpenAccount, TypeDepositFunds, TypeWithdrawFunds, TypeTransferFunds,
		TypeCreditTransfer, TypeRefundTransfer, TypeCloseAccount,
	} {
		if !cov.conflicts[typ] {
			t.Errorf("no version_conflict case for %s", typ)
		}
	}
}

func openCases() []decideCase {
	cmd := func(e Envelope, owner, cur string, od int64) *OpenAccount {
		return &OpenAccount{Envelope: e, Owner: owner, Currency: cur, OverdraftLimit: od}
	}
	opened := func(cmdID, owner, cur string, od int64) []Event {
		return []Event{&AccountOpened{EventMeta: evMeta(cmdID, src, 1), Owner: owner, Currency: cur, OverdraftLimit: od}}
	}
	none := Account{}
	cases := []decideCase{
		{name: "opens", state: none, cmd: cmd(env("c1", src), "Ada Lovelace", "EUR", 500),
			events: opened("c1", "Ada Lovelace", "EUR", 500)},
		{name: "opens without overdraft", state: none, cmd: cmd(env("c1", src), "Ada", "JPY", 0),
			events: opened("c1", "Ada", "JPY", 0)},
		{name: "expected_version 0 means must not exist", state: none, cmd: cmd(envV("c1", src, 0), "Ada", "USD", 0),
			events: opened("c1", "Ada", "USD", 0)},
		{name: "largest overdraft", state: none, cmd: cmd(env("c1", src), "Ada", "USD", MaxAmount),
			events: opened("c1", "Ada", "USD", MaxAmount)},
		{name: "overdraft over the bound", state: none, cmd: cmd(env("c1", src), "Ada", "USD", MaxAmount+1),
			reason: ReasonInvalidCommand, msgHint: "overdraft_limit"},
		{name: "owner over the bound", state: none, cmd: cmd(env("c1", src), strings.Repeat("o", MaxOwnerBytes+1), "USD", 0),
			reason: ReasonInvalidCommand, msgHint: "owner"},
		{name: "account id over the bound", state: none, cmd: cmd(env("c1", strings.Repeat("a", MaxIDBytes+1)), "Ada", "USD", 0),
			reason: ReasonInvalidCommand, msgHint: "account_id"},
		{name: "exists open", state: openAcct(src, "EUR", 0, 0, 3), cmd: cmd(env("c1", src), "Ada", "EUR", 0),
			reason: ReasonAccountExists},
		{name: "exists closed", state: closedAcct(src, "EUR", 0, 4), cmd: cmd(env("c1", src), "Ada", "EUR", 0),
			reason: ReasonAccountExists},
		{name: "expected_version 0 on existing", state: openAcct(src, "EUR", 0, 0, 3), cmd: cmd(envV("c1", src, 0), "Ada", "EUR", 0),
			reason: ReasonVersionConflict},
		{name: "expected_version 2 on absent", state: none, cmd: cmd(envV("c1", src, 2), "Ada", "EUR", 0),
			reason: ReasonVersionConflict},
		{name: "empty owner", state: none, cmd: cmd(env("c1", src), "", "EUR", 0), reason: ReasonInvalidCommand, msgHint: "owner"},
		{name: "blank owner", state: none, cmd: cmd(env("c1", src), " \t", "EUR", 0), reason: ReasonInvalidCommand, msgHint: "owner"},
		{name: "negative overdraft", state: none, cmd: cmd(env("c1", src), "Ada", "EUR", -1), reason: ReasonInvalidCommand, msgHint: "overdraft_limit"},
		{name: "shape before existence", state: openAcct(src, "EUR", 0, 0, 3), cmd: cmd(env("c1", src), "Ada", "eur", 0),
			reason: ReasonInvalidCommand, msgHint: "currency"},
	}
	for _, cur := range []string{"", "eur", "EU", "EURO", "E1R", "EU ", "ÄUR", "€", "\x00\x00\x00"} {
		cases = append(cases, decideCase{name: "currency " + cur, state: none, cmd: cmd(env("c1", src), "Ada", cur, 0),
			reason: ReasonInvalidCommand, msgHint: "currency"})
	}
	cases = append(cases, invalidEnvelopeCases(none, src, func(e Envelope) Command { return cmd(e, "Ada", "EUR", 0) }, false)...)
	cases = append(cases, invalidEnvelopeCases(openAcct(src, "EUR", 0, 0, 1), src, func(e Envelope) Command { return cmd(e, "Ada", "EUR", 0) }, false)...)
	return cases
}

func depositCases() []decideCase {
	cmd := func(e Envelope, amount int64) *DepositFunds {
		return &DepositFunds{Envelope: e, Amount: amount, Reference: "ref-7"}
	}
	deposited := func(version, amount int64, cur string, after int64) []Event {
		return []Event{&FundsDeposited{EventMeta: evMeta("c2", src, version), Amount: amount, Currency: cur, BalanceAfter: after, Reference: "ref-7"}}
	}
	cases := []decideCase{
		{name: "deposits", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c2", src), 50),
			events: deposited(3, 50, "EUR", 150)},
		{name: "expected_version matches", state: openAcct(src, "USD", 100, 0, 2), cmd: cmd(envV("c2", src, 2), 1),
			events: deposited(3, 1, "USD", 101)},
		{name: "into an overdrawn account", state: openAcct(src, "EUR", -300, 500, 9), cmd: cmd(env("c2", src), 50),
			events: deposited(10, 50, "EUR", -250)},
		{name: "up to exactly MaxInt64", state: openAcct(src, "EUR", math.MaxInt64-10, 0, 2), cmd: cmd(env("c2", src), 10),
			events: deposited(3, 10, "EUR", math.MaxInt64)},
		{name: "largest amount into zero", state: openAcct(src, "EUR", 0, 0, 2), cmd: cmd(env("c2", src), MaxAmount),
			events: deposited(3, MaxAmount, "EUR", MaxAmount)},
		{name: "amount over the bound", state: openAcct(src, "EUR", 0, 0, 2), cmd: cmd(env("c2", src), MaxAmount+1),
			reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "overflow", state: openAcct(src, "EUR", math.MaxInt64-10, 0, 2), cmd: cmd(env("c2", src), 11),
			reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "not found", state: Account{}, cmd: cmd(env("c2", src), 50), reason: ReasonAccountNotFound},
		{name: "closed", state: closedAcct(src, "EUR", 0, 5), cmd: cmd(env("c2", src), 50), reason: ReasonAccountClosed},
		{name: "stale expected_version", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(envV("c2", src, 1), 50), reason: ReasonVersionConflict},
		{name: "future expected_version", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(envV("c2", src, 3), 50), reason: ReasonVersionConflict},
		{name: "conflict before not found", state: Account{}, cmd: cmd(envV("c2", src, 1), 50), reason: ReasonVersionConflict},
		{name: "zero amount", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c2", src), 0), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "negative amount", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c2", src), -5), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "MinInt64 amount", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c2", src), math.MinInt64), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "shape before not found", state: Account{}, cmd: cmd(env("c2", src), 0), reason: ReasonInvalidCommand, msgHint: "amount"},
	}
	return append(cases, invalidEnvelopeCases(openAcct(src, "EUR", 100, 0, 2), src, func(e Envelope) Command { return cmd(e, 50) }, false)...)
}

func withdrawCases() []decideCase {
	cmd := func(e Envelope, amount int64) *WithdrawFunds {
		return &WithdrawFunds{Envelope: e, Amount: amount, Reference: "atm"}
	}
	withdrawn := func(version, amount int64, cur string, after int64) []Event {
		return []Event{&FundsWithdrawn{EventMeta: evMeta("c3", src, version), Amount: amount, Currency: cur, BalanceAfter: after, Reference: "atm"}}
	}
	const maxI = math.MaxInt64
	cases := []decideCase{
		{name: "withdraws", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c3", src), 30),
			events: withdrawn(3, 30, "EUR", 70)},
		{name: "whole balance", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c3", src), 100),
			events: withdrawn(3, 100, "EUR", 0)},
		{name: "exactly to the overdraft floor", state: openAcct(src, "GBP", 100, 50, 2), cmd: cmd(envV("c3", src, 2), 150),
			events: withdrawn(3, 150, "GBP", -50)},
		{name: "one past the overdraft floor", state: openAcct(src, "GBP", 100, 50, 2), cmd: cmd(env("c3", src), 151), reason: ReasonInsufficientFunds},
		{name: "empty account without overdraft", state: openAcct(src, "EUR", 0, 0, 1), cmd: cmd(env("c3", src), 1), reason: ReasonInsufficientFunds},
		{name: "already overdrawn", state: openAcct(src, "EUR", -50, 50, 4), cmd: cmd(env("c3", src), 1), reason: ReasonInsufficientFunds},
		{name: "MaxInt64 overdraft and balance, largest amount", state: openAcct(src, "EUR", maxI, maxI, 2), cmd: cmd(env("c3", src), MaxAmount),
			events: withdrawn(3, MaxAmount, "EUR", maxI-MaxAmount)},
		{name: "MaxInt64 overdraft down to -MaxInt64", state: openAcct(src, "EUR", MaxAmount-maxI, maxI, 2), cmd: cmd(env("c3", src), MaxAmount),
			events: withdrawn(3, MaxAmount, "EUR", -maxI)},
		{name: "would underflow int64", state: openAcct(src, "EUR", -maxI+MaxAmount-1, maxI, 2), cmd: cmd(env("c3", src), MaxAmount), reason: ReasonInsufficientFunds},
		{name: "at -MaxInt64", state: openAcct(src, "EUR", -maxI, maxI, 2), cmd: cmd(env("c3", src), 1), reason: ReasonInsufficientFunds},
		{name: "not found", state: Account{}, cmd: cmd(env("c3", src), 1), reason: ReasonAccountNotFound},
		{name: "closed", state: closedAcct(src, "EUR", 0, 5), cmd: cmd(env("c3", src), 1), reason: ReasonAccountClosed},
		{name: "stale expected_version", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(envV("c3", src, 0), 1), reason: ReasonVersionConflict},
		{name: "conflict before insufficient funds", state: openAcct(src, "EUR", 0, 0, 2), cmd: cmd(envV("c3", src, 1), 1), reason: ReasonVersionConflict},
		{name: "zero amount", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c3", src), 0), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "negative amount", state: openAcct(src, "EUR", 100, 0, 2), cmd: cmd(env("c3", src), -100), reason: ReasonInvalidCommand, msgHint: "amount"},
	}
	return append(cases, invalidEnvelopeCases(openAcct(src, "EUR", 100, 0, 2), src, func(e Envelope) Command { return cmd(e, 1) }, false)...)
}

func transferCases() []decideCase {
	cmd := func(e Envelope, tid, from, to string, amount int64) *TransferFunds {
		return &TransferFunds{Envelope: e, TransferID: tid, FromAccountID: from, ToAccountID: to, Amount: amount, Reference: "rent"}
	}
	debited := func(version, amount int64, cur string, after int64) []Event {
		return []Event{&TransferDebited{EventMeta: evMeta("t1", src, version), TransferID: "tr-1", ToAccountID: dst,
			Amount: amount, Currency: cur, BalanceAfter: after}}
	}
	// The credit's id comes from the debit event, never from the client's
	// command id (a reused or guessed id must not shadow another credit).
	credit := func(version, amount int64, cur string) []Command {
		return []Command{&CreditTransfer{
			Envelope:   Envelope{CommandID: EventID(src, version) + CreditSuffix, AggregateID: dst, CorrelationID: "corr-1", IssuedAt: t0},
			TransferID: "tr-1", FromAccountID: src, ToAccountID: dst, Amount: amount, Currency: cur,
		}}
	}
	open := openAcct(src, "EUR", 1000, 0, 5)
	cases := []decideCase{
		{name: "debits and asks the destination to credit", state: open, cmd: cmd(env("t1", src), "tr-1", src, dst, 300),
			events: debited(6, 300, "EUR", 700), commands: credit(6, 300, "EUR")},
		{name: "expected_version matches", state: open, cmd: cmd(envV("t1", src, 5), "tr-1", src, dst, 1000),
			events: debited(6, 1000, "EUR", 0), commands: credit(6, 1000, "EUR")},
		{name: "into the overdraft", state: openAcct(src, "CHF", 10, 100, 1), cmd: cmd(env("t1", src), "tr-1", src, dst, 110),
			events: debited(2, 110, "CHF", -100), commands: credit(2, 110, "CHF")},
		{name: "to an account that may not exist (the destination decides)", state: open, cmd: cmd(env("t1", src), "tr-1", src, dst, 1),
			events: debited(6, 1, "EUR", 999), commands: credit(6, 1, "EUR")},
		{name: "insufficient funds", state: open, cmd: cmd(env("t1", src), "tr-1", src, dst, 1001), reason: ReasonInsufficientFunds},
		{name: "same account", state: open, cmd: cmd(env("t1", src), "tr-1", src, src, 1), reason: ReasonSameAccount},
		{name: "same account before version check", state: open, cmd: cmd(envV("t1", src, 1), "tr-1", src, src, 1), reason: ReasonSameAccount},
		{name: "source not found", state: Account{}, cmd: cmd(env("t1", src), "tr-1", src, dst, 1), reason: ReasonAccountNotFound},
		{name: "source closed", state: closedAcct(src, "EUR", 0, 7), cmd: cmd(env("t1", src), "tr-1", src, dst, 1), reason: ReasonAccountClosed},
		{name: "stale expected_version", state: open, cmd: cmd(envV("t1", src, 4), "tr-1", src, dst, 1), reason: ReasonVersionConflict},
		{name: "empty transfer_id", state: open, cmd: cmd(env("t1", src), "", src, dst, 1), reason: ReasonInvalidCommand, msgHint: "transfer_id"},
		{name: "empty from_account_id", state: open, cmd: cmd(env("t1", src), "tr-1", "", dst, 1), reason: ReasonInvalidCommand, msgHint: "from_account_id"},
		{name: "addressed to the destination", state: Account{}, cmd: cmd(env("t1", dst), "tr-1", src, dst, 1), reason: ReasonInvalidCommand, msgHint: "from_account_id"},
		{name: "empty to_account_id", state: open, cmd: cmd(env("t1", src), "tr-1", src, "", 1), reason: ReasonInvalidCommand, msgHint: "to_account_id"},
		{name: "zero amount", state: open, cmd: cmd(env("t1", src), "tr-1", src, dst, 0), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "negative amount", state: open, cmd: cmd(env("t1", src), "tr-1", src, dst, -1), reason: ReasonInvalidCommand, msgHint: "amount"},
	}
	return append(cases, invalidEnvelopeCases(open, src, func(e Envelope) Command { return cmd(e, "tr-1", src, dst, 1) }, false)...)
}

func creditCases() []decideCase {
	cmd := func(e Envelope, tid, from, to string, amount int64, cur string) *CreditTransfer {
		return &CreditTransfer{Envelope: e, TransferID: tid, FromAccountID: from, ToAccountID: to, Amount: amount, Currency: cur}
	}
	ok := func(e Envelope) *CreditTransfer { return cmd(e, "tr-1", src, dst, 300, "EUR") }
	credited := func(version, after int64) []Event {
		return []Event{&TransferCredited{EventMeta: evMeta("t1/credit", dst, version), TransferID: "tr-1", FromAccountID: src,
			Amount: 300, Currency: "EUR", BalanceAfter: after}}
	}
	refund := func(reason Reason) []Command {
		return []Command{&RefundTransfer{
			Envelope:   Envelope{CommandID: "t1/credit/refund", AggregateID: src, CorrelationID: "corr-1", IssuedAt: t0},
			TransferID: "tr-1", FromAccountID: src, ToAccountID: dst, Amount: 300, Currency: "EUR", Reason: string(reason),
		}}
	}
	dest := openAcct(dst, "EUR", 10, 0, 1)
	cases := []decideCase{
		{name: "credits", state: dest, cmd: ok(env("t1/credit", dst)), events: credited(2, 310)},
		{name: "credits an overdrawn account", state: openAcct(dst, "EUR", -500, 500, 3), cmd: ok(env("t1/credit", dst)), events: credited(4, -200)},
		{name: "expected_version matches", state: dest, cmd: ok(envV("t1/credit", dst, 1)), events: credited(2, 310)},
		{name: "destination not found: refund", state: Account{}, cmd: ok(env("t1/credit", dst)),
			reason: ReasonAccountNotFound, commands: refund(ReasonAccountNotFound)},
		{name: "destination closed: refund", state: closedAcct(dst, "EUR", 0, 4), cmd: ok(env("t1/credit", dst)),
			reason: ReasonAccountClosed, commands: refund(ReasonAccountClosed)},
		{name: "other currency: refund", state: openAcct(dst, "USD", 10, 0, 1), cmd: ok(env("t1/credit", dst)),
			reason: ReasonCurrencyMismatch, commands: refund(ReasonCurrencyMismatch)},
		{name: "stale expected_version: refund", state: dest, cmd: ok(envV("t1/credit", dst, 0)),
			reason: ReasonVersionConflict, commands: refund(ReasonVersionConflict)},
		{name: "balance overflow: refund", state: openAcct(dst, "EUR", math.MaxInt64-299, 0, 1), cmd: ok(env("t1/credit", dst)),
			reason: ReasonInvalidCommand, msgHint: "overflow", commands: refund(ReasonInvalidCommand)},
		// Malformed credits were not issued by Decide: no refund, which would create money.
		{name: "empty transfer_id", state: dest, cmd: cmd(env("t1/credit", dst), "", src, dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "transfer_id"},
		{name: "empty from_account_id", state: dest, cmd: cmd(env("t1/credit", dst), "tr-1", "", dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "from_account_id"},
		{name: "empty to_account_id", state: dest, cmd: cmd(env("t1/credit", dst), "tr-1", src, "", 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "to_account_id"},
		{name: "addressed to the source", state: Account{}, cmd: cmd(env("t1/credit", src), "tr-1", src, dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "to_account_id"},
		{name: "from = to", state: dest, cmd: cmd(env("t1/credit", dst), "tr-1", dst, dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "from_account_id"},
		{name: "zero amount", state: dest, cmd: cmd(env("t1/credit", dst), "tr-1", src, dst, 0, "EUR"), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "bad currency", state: dest, cmd: cmd(env("t1/credit", dst), "tr-1", src, dst, 300, "eur"), reason: ReasonInvalidCommand, msgHint: "currency"},
	}
	return append(cases, invalidEnvelopeCases(dest, dst, func(e Envelope) Command { return ok(e) }, true)...)
}

func refundCases() []decideCase {
	cmd := func(e Envelope, tid, from, to string, amount int64, cur string) *RefundTransfer {
		return &RefundTransfer{Envelope: e, TransferID: tid, FromAccountID: from, ToAccountID: to, Amount: amount, Currency: cur, Reason: "account_closed"}
	}
	ok := func(e Envelope) *RefundTransfer { return cmd(e, "tr-1", src, dst, 300, "EUR") }
	refunded := func(version, after int64) []Event {
		return []Event{&TransferRefunded{EventMeta: evMeta("t1/credit/refund", src, version), TransferID: "tr-1", ToAccountID: dst,
			Amount: 300, Currency: "EUR", BalanceAfter: after, Reason: "account_closed"}}
	}
	source := openAcct(src, "EUR", 700, 0, 6)
	cases := []decideCase{
		{name: "refunds", state: source, cmd: ok(env("t1/credit/refund", src)), events: refunded(7, 1000)},
		{name: "refunds a closed source", state: closedAcct(src, "EUR", 0, 8), cmd: ok(env("t1/credit/refund", src)), events: refunded(9, 300)},
		{name: "refunds an overdrawn source", state: openAcct(src, "EUR", -300, 300, 6), cmd: ok(env("t1/credit/refund", src)), events: refunded(7, 0)},
		{name: "expected_version matches", state: source, cmd: ok(envV("t1/credit/refund", src, 6)), events: refunded(7, 1000)},
		{name: "stale expected_version", state: source, cmd: ok(envV("t1/credit/refund", src, 5)), reason: ReasonVersionConflict},
		{name: "source not found", state: Account{}, cmd: ok(env("t1/credit/refund", src)), reason: ReasonAccountNotFound},
		{name: "other currency", state: openAcct(src, "USD", 700, 0, 6), cmd: ok(env("t1/credit/refund", src)), reason: ReasonCurrencyMismatch},
		// The amount stays in flight rather than being saturated away; see decideRefund.
		{name: "balance overflow stays in flight", state: openAcct(src, "EUR", math.MaxInt64-299, 0, 6), cmd: ok(env("t1/credit/refund", src)),
			reason: ReasonInvalidCommand, msgHint: "overflow"},
		{name: "empty transfer_id", state: source, cmd: cmd(env("r", src), "", src, dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "transfer_id"},
		{name: "empty to_account_id", state: source, cmd: cmd(env("r", src), "tr-1", src, "", 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "to_account_id"},
		{name: "addressed to the destination", state: Account{}, cmd: cmd(env("r", dst), "tr-1", src, dst, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "from_account_id"},
		{name: "from = to", state: source, cmd: cmd(env("r", src), "tr-1", src, src, 300, "EUR"), reason: ReasonInvalidCommand, msgHint: "to_account_id"},
		{name: "negative amount", state: source, cmd: cmd(env("r", src), "tr-1", src, dst, -300, "EUR"), reason: ReasonInvalidCommand, msgHint: "amount"},
		{name: "bad currency", state: source, cmd: cmd(env("r", src), "tr-1", src, dst, 300, ""), reason: ReasonInvalidCommand, msgHint: "currency"},
	}
	return append(cases, invalidEnvelopeCases(source, src, func(e Envelope) Command { return ok(e) }, true)...)
}

func closeCases() []decideCase {
	cmd := func(e Envelope) *CloseAccount { return &CloseAccount{Envelope: e} }
	open := openAcct(src, "EUR", 0, 100, 12)
	cases := []decideCase{
		{name: "closes", state: open, cmd: cmd(env("c4", src)), events: []Event{&AccountClosed{EventMeta: evMeta("c4", src, 13)}}},
		{name: "expected_version matches", state: open, cmd: cmd(envV("c4", src, 12)), events: []Event{&AccountClosed{EventMeta: evMeta("c4", src, 13)}}},
		{name: "positive balance", state: openAcct(src, "EUR", 1, 0, 12), cmd: cmd(env("c4", src)), reason: ReasonBalanceNotZero},
		{name: "negative balance", state: openAcct(src, "EUR", -1, 100, 12), cmd: cmd(env("c4", src)), reason: ReasonBalanceNotZero},
		{name: "already closed", state: closedAcct(src, "EUR", 0, 13), cmd: cmd(env("c4", src)), reason: ReasonAccountClosed},
		{name: "closed with refunded money", state: closedAcct(src, "EUR", 300, 14), cmd: cmd(env("c4", src)), reason: ReasonAccountClosed},
		{name: "not found", state: Account{}, cmd: cmd(env("c4", src)), reason: ReasonAccountNotFound},
		{name: "stale expected_version", state: open, cmd: cmd(envV("c4", src, 11)), reason: ReasonVersionConflict},
	}
	return append(cases, invalidEnvelopeCases(open, src, func(e Envelope) Command { return cmd(e) }, false)...)
}

// foreignCommand implements Command outside the known set; Decide must reject
// it without calling its methods (which panic here).
type foreignCommand struct{}

func (foreignCommand) Env() *Envelope { panic("Decide must not call Env on an unknown command") }
func (foreignCommand) Type() string   { panic("Decide must not call Type on an unknown command") }

func malformedCases() []decideCase {
	open := openAcct(src, "EUR", 0, 0, 1)
	cases := []decideCase{
		{name: "nil command", state: open, cmd: nil, reason: ReasonInvalidCommand, msgHint: "nil"},
		{name: "unknown command type", state: open, cmd: foreignCommand{}, reason: ReasonInvalidCommand, msgHint: "foreignCommand"},
	}
	for _, c := range []Command{
		(*OpenAccount)(nil), (*DepositFunds)(nil), (*WithdrawFunds)(nil), (*TransferFunds)(nil),
		(*CreditTransfer)(nil), (*RefundTransfer)(nil), (*CloseAccount)(nil),
	} {
		cases = append(cases, decideCase{name: "typed nil " + c.Type(), state: open, cmd: c, reason: ReasonInvalidCommand, msgHint: c.Type()})
	}
	return cases
}

// A whole transfer that bounces, step by step through Decide and Fold, with
// every id, version and time pinned: the saga contract other packages rely on.
func TestTransferSagaRefund(t *testing.T) {
	tIssued := t0.Add(time.Minute)
	source := openAcct(src, "EUR", 1000, 0, 5)
	dest := closedAcct(dst, "EUR", 0, 3)

	transfer := &TransferFunds{
		Envelope:   Envelope{CommandID: "cmd-9", AggregateID: src, CorrelationID: "flow-1", IssuedAt: tIssued},
		TransferID: "tr-9", FromAccountID: src, ToAccountID: dst, Amount: 400,
	}
	d1 := Decide(source, transfer)
	if d1.Err() != nil || len(d1.Commands) != 1 {
		t.Fatalf("transfer: %s", dump(d1))
	}
	credit := d1.Commands[0].(*CreditTransfer)
	if credit.CommandID != src+"/6/credit" || credit.AggregateID != dst || credit.CorrelationID != "flow-1" ||
		!credit.IssuedAt.Equal(tIssued) || credit.ExpectedVersion != nil {
		t.Fatalf("credit envelope: %s", dump(credit))
	}

	d2 := Decide(dest, credit)
	if d2.Rejection == nil || d2.Rejection.Reason != ReasonAccountClosed || len(d2.Events) != 0 || len(d2.Commands) != 1 {
		t.Fatalf("credit: %s", dump(d2))
	}
	refund := d2.Commands[0].(*RefundTransfer)
	want := &RefundTransfer{
		Envelope:   Envelope{CommandID: src + "/6/credit/refund", AggregateID: src, CorrelationID: "flow-1", IssuedAt: tIssued},
		TransferID: "tr-9", FromAccountID: src, ToAccountID: dst, Amount: 400, Currency: "EUR", Reason: "account_closed",
	}
	if dump(refund) != dump(want) {
		t.Fatalf("refund:\n got %s\nwant %s", dump(refund), dump(want))
	}

	// The source closes while the money is in flight; the refund still applies.
	source = Fold(source, d1.Events)
	source = Fold(source, Decide(source, &WithdrawFunds{Envelope: Envelope{CommandID: "w", AggregateID: src, IssuedAt: tIssued}, Amount: 600}).Events)
	source = Fold(source, Decide(source, &CloseAccount{Envelope: Envelope{CommandID: "x", AggregateID: src, IssuedAt: tIssued}}).Events)
	if source.Status != StatusClosed || source.Version != 8 {
		t.Fatalf("source before refund: %s", dump(source))
	}
	d3 := Decide(source, refund)
	if d3.Err() != nil {
		t.Fatalf("refund rejected: %v", d3.Err())
	}
	source = Fold(source, d3.Events)
	e := d3.Events[0].(*TransferRefunded)
	if e.EventID != src+"/9" || e.Version != 9 || e.BalanceAfter != 400 || e.CausationID != src+"/6/credit/refund" ||
		e.CorrelationID != "flow-1" || !e.OccurredAt.Equal(tIssued) {
		t.Fatalf("refunded event: %s", dump(e))
	}
	if source.Balance != 400 || source.Status != StatusClosed || source.Version != 9 {
		t.Fatalf("source after refund: %s", dump(source))
	}
}

func TestRejectionError(t *testing.T) {
	d := Decide(openAcct(src, "EUR", 0, 0, 1), &WithdrawFunds{Envelope: env("c", src), Amount: 1})
	err := d.Err()
	var r *Rejection
	if !errors.As(err, &r) || r.Reason != ReasonInsufficientFunds {
		t.Fatalf("errors.As: %v", err)
	}
	if !errors.Is(err, &Rejection{Reason: ReasonInsufficientFunds}) {
		t.Fatalf("errors.Is by reason failed for %v", err)
	}
	if errors.Is(err, &Rejection{Reason: ReasonAccountClosed}) {
		t.Fatalf("errors.Is matched another reason")
	}
	if got := err.Error(); got != "insufficient_funds: "+r.Message {
		t.Fatalf("Error() = %q", got)
	}
	if got := (&Rejection{Reason: ReasonSameAccount}).Error(); got != "same_account" {
		t.Fatalf("Error() without message = %q", got)
	}
	if (Decision{}).Err() != nil {
		t.Fatal("Err() of an accepted decision must be a true nil")
	}
}

func TestMonotonicClockStripped(t *testing.T) {
	now := time.Now() // carries a monotonic reading
	d := Decide(Account{}, &OpenAccount{Envelope: Envelope{CommandID: "c", AggregateID: src, IssuedAt: now}, Owner: "A", Currency: "EUR"})
	got := d.Events[0].Meta().OccurredAt
	if !got.Equal(now) || got != now.Round(0) {
		t.Fatalf("occurred_at = %v, want %v without monotonic reading", got, now)
	}
}

func TestIsInternalAndReserved(t *testing.T) {
	for _, c := range []struct {
		cmd  Command
		want bool
	}{
		{&OpenAccount{}, false}, {&DepositFunds{}, false}, {&WithdrawFunds{}, false}, {&TransferFunds{}, false},
		{&CloseAccount{}, false}, {&CreditTransfer{}, true}, {&RefundTransfer{}, true}, {nil, false},
	} {
		if got := IsInternal(c.cmd); got != c.want {
			t.Errorf("IsInternal(%T) = %v", c.cmd, got)
		}
	}
	for id, want := range map[string]bool{"t/credit": true, "t/credit/refund": true, "t/refund": true, "credit": false, "t/credit/1": false, "": false} {
		if got := ReservedCommandID(id); got != want {
			t.Errorf("ReservedCommandID(%q) = %v", id, got)
		}
	}
}
