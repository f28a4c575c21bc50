package domain

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	garbageStrings = []string{
		"", " ", "\t", "a", "acc-1", "acc-2", "EUR", "USD", "eur", "EU", "EURO", "€", "ÄUR", "\x00\x00\x00",
		"\xff\xfe\xfd", "t/credit", "t/refund", "t/credit/refund", "/", "acc-1/1", strings.Repeat("x", 100_000),
	}
	garbageInts = []int64{
		math.MinInt64, math.MinInt64 + 1, -math.MaxInt64 / 2, -1000, -1, 0, 1, 2, 999, 1000,
		math.MaxInt64 / 2, math.MaxInt64 - 1, math.MaxInt64,
	}
	garbageTimes = []time.Time{
		{}, t0, time.Unix(0, 0), time.Unix(0, 1).In(time.FixedZone("odd", -3*3600-1)),
		time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1<<40, 1, 1, 0, 0, 0, 0, time.UTC), time.Now(),
	}
)

type garbage struct{ r *rand.Rand }

func (g garbage) str() string {
	if g.r.IntN(4) == 0 {
		return string(rune(g.r.IntN(0x11000))) + string(rune(g.r.IntN(128)))
	}
	return garbageStrings[g.r.IntN(len(garbageStrings))]
}

func (g garbage) int() int64 {
	if g.r.IntN(4) == 0 {
		return int64(g.r.Uint64())
	}
	return garbageInts[g.r.IntN(len(garbageInts))]
}

func (g garbage) envelope() Envelope {
	e := Envelope{CommandID: g.str(), AggregateID: g.str(), CorrelationID: g.str(), IssuedAt: garbageTimes[g.r.IntN(len(garbageTimes))]}
	if g.r.IntN(2) == 0 {
		v := g.int()
		if g.r.IntN(2) == 0 {
			v = int64(g.r.IntN(4))
		}
		e.ExpectedVersion = &v
	}
	return e
}

func (g garbage) command() Command {
	e := g.envelope()
	switch g.r.IntN(9) {
	case 0:
		return &OpenAccount{Envelope: e, Owner: g.str(), Currency: g.str(), OverdraftLimit: g.int()}
	case 1:
		return &DepositFunds{Envelope: e, Amount: g.int(), Reference: g.str()}
	case 2:
		return &WithdrawFunds{Envelope: e, Amount: g.int(), Reference: g.str()}
	case 3:
		return &TransferFunds{Envelope: e, TransferID: g.str(), FromAccountID: g.str(), ToAccountID: g.str(), Amount: g.int(), Reference: g.str()}
	case 4:
		return &CreditTransfer{Envelope: e, TransferID: g.str(), FromAccountID: g.str(), ToAccountID: g.str(), Amount: g.int(), Currency: g.str()}
	case 5:
		return &RefundTransfer{Envelope: e, TransferID: g.str(), FromAccountID: g.str(), ToAccountID: g.str(), Amount: g.int(), Currency: g.str(), Reason: g.str()}
	case 6:
		return &CloseAccount{Envelope: e}
	case 7:
		return []Command{nil, (*OpenAccount)(nil), (*CreditTransfer)(nil), (*CloseAccount)(nil), foreignCommand{}}[g.r.IntN(5)]
	}
	// Mostly well-formed, so that garbage also reaches the state-dependent rules.
	e.AggregateID, e.CommandID, e.IssuedAt = "acc-1", "cmd", t0
	return &TransferFunds{Envelope: e, TransferID: "t", FromAccountID: "acc-1", ToAccountID: g.str(), Amount: g.int()}
}

func (g garbage) state(agg string) Account {
	if g.r.IntN(4) == 0 {
		return Account{}
	}
	id := agg
	if g.r.IntN(8) == 0 {
		id = g.str()
	}
	return Account{
		ID: id, Owner: g.str(), Currency: g.str(), Balance: g.int(), OverdraftLimit: g.int(),
		Status: Status(g.r.IntN(5)), Version: g.int(), UpdatedAt: garbageTimes[g.r.IntN(len(garbageTimes))],
	}
}

// TestDecideGarbage feeds Decide and Evolve random and hostile values: they
// must never panic, and every decision is either accepted with events or
// rejected with a known reason, never both and never neither.
func TestDecideGarbage(t *testing.T) {
	const seed = 7
	g := garbage{rand.New(rand.NewPCG(seed, 0))}
	n := 30000
	if testing.Short() {
		n /= 10
	}
	accepted := 0
	for i := range n {
		c := g.command()
		agg := "acc-1"
		if c != nil {
			if e := safeEnv(c); e != nil {
				agg = e.AggregateID
			}
		}
		s := g.state(agg)
		if checkDecision(t, s, c) {
			accepted++
		}
		if t.Failed() {
			t.Fatalf("seed %d, iteration %d", seed, i)
		}
	}
	t.Logf("%d of %d garbage commands accepted", accepted, n)
	if accepted == 0 {
		t.Error("no garbage command was accepted: the generator never reaches the rules")
	}
}

// safeEnv returns c's envelope if c is one of ours and non-nil.
func safeEnv(c Command) *Envelope {
	switch c := c.(type) {
	case *OpenAccount:
		if c != nil {
			return c.Env()
		}
	case *DepositFunds:
		if c != nil {
			return c.Env()
		}
	case *WithdrawFunds:
		if c != nil {
			return c.Env()
		}
	case *TransferFunds:
		if c != nil {
			return c.Env()
		}
	case *CreditTransfer:
		if c != nil {
			return c.Env()
		}
	case *RefundTransfer:
		if c != nil {
			return c.Env()
		}
	case *CloseAccount:
		if c != nil {
			return c.Env()
		}
	}
	return nil
}

var knownReasons = map[Reason]bool{
	ReasonInvalidCommand: true, ReasonAccountNotFound: true, ReasonAccountExists: true, ReasonAccountClosed: true,
	ReasonInsufficientFunds: true, ReasonCurrencyMismatch: true, ReasonBalanceNotZero: true,
	ReasonVersionConflict: true, ReasonSameAccount: true,
}

// checkDecision decides c on s (a panic fails the test with the input) and
// checks the shape of the outcome; it reports whether c was accepted.
func checkDecision(t *testing.T, s Account, c Command) (ok bool) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic %v\nstate %s\ncommand %s", p, trim(dump(s)), trim(dump(c)))
		}
	}()
	d := Decide(s, c)
	switch {
	case d.Rejection == nil && len(d.Events) == 0:
		t.Errorf("neither events nor rejection for %s on %s", trim(dump(c)), trim(dump(s)))
	case d.Rejection != nil && len(d.Events) != 0:
		t.Errorf("both events and rejection %v", d.Rejection)
	case d.Rejection != nil && (!knownReasons[d.Rejection.Reason] || d.Rejection.Message == ""):
		t.Errorf("rejection %q with message %q", d.Rejection.Reason, d.Rejection.Message)
	case d.Rejection != nil && len(d.Rejection.Message) > 1000:
		t.Errorf("rejection message of %d bytes echoes unbounded input", len(d.Rejection.Message))
	}
	next := s
	for i, e := range d.Events {
		if e == nil || e.Meta().Version != s.Version+int64(i)+1 {
			t.Errorf("event %d: %s after version %d", i, trim(dump(e)), s.Version)
		}
		next = Evolve(next, e)
		_ = e.Type()
	}
	if len(d.Events) > 0 && (next.Version <= s.Version || next.Status == StatusNone) {
		t.Errorf("accepted events left state %s", trim(dump(next)))
	}
	for _, sc := range d.Commands {
		if sc == nil || sc.Env().CommandID == "" || sc.Env().ExpectedVersion != nil {
			t.Errorf("saga command %s", trim(dump(sc)))
		}
	}
	return d.Rejection == nil
}

func trim(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// TestEvolveGarbage: Evolve and Fold accept any event values without
// panicking (they trust events, so there is nothing else to check).
func TestEvolveGarbage(t *testing.T) {
	g := garbage{rand.New(rand.NewPCG(11, 0))}
	for range 5000 {
		m := EventMeta{EventID: g.str(), AggregateID: g.str(), Version: g.int(), OccurredAt: garbageTimes[g.r.IntN(len(garbageTimes))]}
		events := []Event{
			&AccountOpened{EventMeta: m, Owner: g.str(), Currency: g.str(), OverdraftLimit: g.int()},
			&FundsDeposited{EventMeta: m, Amount: g.int(), BalanceAfter: g.int()},
			&FundsWithdrawn{EventMeta: m, Amount: g.int(), BalanceAfter: g.int()},
			&TransferDebited{EventMeta: m, Amount: g.int(), BalanceAfter: g.int()},
			&TransferCredited{EventMeta: m, Amount: g.int(), BalanceAfter: g.int()},
			&TransferRefunded{EventMeta: m, Amount: g.int(), BalanceAfter: g.int()},
			&AccountClosed{EventMeta: m}, nil, (*AccountClosed)(nil),
		}
		g.r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		_ = Fold(g.state(m.AggregateID), events)
	}
}

// FuzzDecide is the open-ended version of TestDecideGarbage: go test runs the
// seed corpus; go test -fuzz=FuzzDecide ./internal/domain/ explores.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(0), "c1", "acc-1", "Ada", "EUR", int64(100), int64(-1), uint8(0), int64(0), int64(0), int64(0))
	f.Add(uint8(1), "c2", "acc-1", "ref", "EUR", int64(math.MaxInt64), int64(3), uint8(1), int64(1), int64(0), int64(3))
	f.Add(uint8(2), "c3", "acc-1", "ref", "EUR", int64(150), int64(-1), uint8(1), int64(100), int64(50), int64(3))
	f.Add(uint8(3), "c4", "acc-1", "acc-2", "EUR", int64(1), int64(-1), uint8(1), int64(-1), int64(math.MaxInt64), int64(9))
	f.Add(uint8(4), "c5/credit", "acc-2", "acc-1", "USD", int64(5), int64(-1), uint8(2), int64(0), int64(0), int64(4))
	f.Add(uint8(5), "c6/credit/refund", "acc-1", "acc-2", "EUR", int64(5), int64(-1), uint8(2), int64(math.MaxInt64-1), int64(0), int64(8))
	f.Add(uint8(6), "c7", "acc-1", "", "", int64(0), int64(7), uint8(1), int64(0), int64(0), int64(7))
	f.Fuzz(func(t *testing.T, kind uint8, cmdID, agg, s1, cur string, amount, expected int64, status uint8, balance, overdraft, version int64) {
		e := Envelope{CommandID: cmdID, AggregateID: agg, CorrelationID: "corr", IssuedAt: t0}
		if expected >= 0 {
			e.ExpectedVersion = &expected
		}
		var c Command
		switch kind % 7 {
		case 0:
			c = &OpenAccount{Envelope: e, Owner: s1, Currency: cur, OverdraftLimit: amount}
		case 1:
			c = &DepositFunds{Envelope: e, Amount: amount, Reference: s1}
		case 2:
			c = &WithdrawFunds{Envelope: e, Amount: amount, Reference: s1}
		case 3:
			c = &TransferFunds{Envelope: e, TransferID: cmdID, FromAccountID: agg, ToAccountID: s1, Amount: amount}
		case 4:
			c = &CreditTransfer{Envelope: e, TransferID: cmdID, FromAccountID: s1, ToAccountID: agg, Amount: amount, Currency: cur}
		case 5:
			c = &RefundTransfer{Envelope: e, TransferID: cmdID, FromAccountID: agg, ToAccountID: s1, Amount: amount, Currency: cur}
		case 6:
			c = &CloseAccount{Envelope: e}
		}
		s := Account{ID: agg, Owner: "o", Currency: "EUR", Balance: balance, OverdraftLimit: overdraft, Status: Status(status % 4), Version: version}
		if s.Status == StatusNone {
			s = Account{}
		}
		checkDecision(t, s, c)
	})
}
