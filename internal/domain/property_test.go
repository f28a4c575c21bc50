package domain

import (
	"flag"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	propSeed = flag.Uint64("domain.seed", 20250314, "seed of TestPropertyLedger; a failure prints the one to reproduce it")
	propRuns = flag.Int("domain.runs", 2000, "random command sequences in TestPropertyLedger")
)

const propSteps = 60 // commands per sequence before the saga queue is drained

// TestPropertyLedger runs random command sequences over a handful of
// accounts in three currencies, routing saga commands through a queue that
// is drained in random interleavings with new commands, and checks after
// every command that money is conserved per currency and every event is
// well formed, and at the end that versions are contiguous, Fold of the
// emitted events rebuilds each state, and every transfer settled exactly
// once.
func TestPropertyLedger(t *testing.T) {
	runs := *propRuns
	if testing.Short() {
		runs /= 10
	}
	stats := map[statKey]int{}
	start := time.Now()
	for run := range runs {
		m := newModel(t, *propSeed, run, stats)
		for m.step = 0; m.step < propSteps; m.step++ {
			if len(m.queue) > 0 && m.r.IntN(10) < 3 {
				m.deliver(m.dequeue(), false)
				continue
			}
			c, corrupt := m.external()
			m.deliver(c, corrupt)
		}
		for len(m.queue) > 0 {
			m.step++
			m.deliver(m.dequeue(), false)
		}
		m.finish()
	}
	t.Logf("%d sequences in %v (seed %d)", runs, time.Since(start).Round(time.Millisecond), *propSeed)

	// The sequences must actually reach the interesting paths.
	for _, k := range []statKey{
		{TypeOpenAccount, ""}, {TypeDepositFunds, ""}, {TypeWithdrawFunds, ""}, {TypeTransferFunds, ""},
		{TypeCreditTransfer, ""}, {TypeRefundTransfer, ""}, {TypeCloseAccount, ""},
		{TypeOpenAccount, ReasonAccountExists}, {TypeDepositFunds, ReasonAccountNotFound}, {TypeDepositFunds, ReasonAccountClosed},
		{TypeDepositFunds, ReasonInvalidCommand}, {TypeWithdrawFunds, ReasonInsufficientFunds},
		{TypeTransferFunds, ReasonSameAccount}, {TypeTransferFunds, ReasonInsufficientFunds},
		{TypeCreditTransfer, ReasonAccountNotFound}, {TypeCreditTransfer, ReasonAccountClosed},
		// A credit rejected as invalid (a balance overflow) needs a balance
		// near MaxInt64, out of reach with amounts bounded by MaxAmount;
		// TestDecide covers it with crafted states.
		{TypeCreditTransfer, ReasonCurrencyMismatch},
		{TypeCloseAccount, ReasonBalanceNotZero}, {TypeDepositFunds, ReasonVersionConflict},
		{TypeTransferFunds, ReasonVersionConflict}, {TypeCloseAccount, ReasonVersionConflict},
		{"refund to a closed source", ""}, {"corrupt command", ""},
	} {
		if stats[k] == 0 && runs >= 1000 {
			t.Errorf("no sequence reached %s %s", k.typ, k.reason)
		}
	}
	if testing.Verbose() {
		var lines []string
		for k, n := range stats {
			lines = append(lines, fmt.Sprintf("%-34s %-18s %7d", k.typ, k.reason, n))
		}
		slices.Sort(lines)
		t.Logf("outcomes:\n%s", strings.Join(lines, "\n"))
	}
}

type statKey struct {
	typ    string
	reason Reason
}

type inflight struct {
	amount   int64
	currency string
}

type model struct {
	t          *testing.T
	r          *rand.Rand
	seed       uint64
	run, step  int
	ids        []string // account pool; the last one is never opened
	currencies []string

	state    map[string]Account
	log      map[string][]Event
	eventIDs map[string]bool
	cmdIDs   map[string]bool
	queue    []Command

	deposits, withdrawals map[string]i128 // per currency
	inflight              map[string]inflight
	debited               map[string]bool
	settled               map[string]int  // credits + refunds per transfer id
	stuck                 map[string]bool // refund rejected for int64 overflow

	clock time.Time
	n     int
	stats map[statKey]int
}

func newModel(t *testing.T, seed uint64, run int, stats map[statKey]int) *model {
	return &model{
		t: t, r: rand.New(rand.NewPCG(seed, uint64(run))), seed: seed, run: run,
		ids:        []string{"acc-a", "acc-b", "acc-c", "acc-d", "acc-e", "acc-ghost"},
		currencies: []string{"EUR", "USD", "JPY"},
		state:      map[string]Account{}, log: map[string][]Event{},
		eventIDs: map[string]bool{}, cmdIDs: map[string]bool{},
		deposits: map[string]i128{}, withdrawals: map[string]i128{},
		inflight: map[string]inflight{}, debited: map[string]bool{}, settled: map[string]int{}, stuck: map[string]bool{},
		clock: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		stats: stats,
	}
}

func (m *model) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("seed=%d run=%d step=%d: %s\nreproduce: go test -race -run 'TestPropertyLedger$' ./internal/domain/ -domain.seed=%d",
		m.seed, m.run, m.step, fmt.Sprintf(format, args...), m.seed)
}

func (m *model) dequeue() Command {
	i := m.r.IntN(len(m.queue))
	c := m.queue[i]
	m.queue[i] = m.queue[len(m.queue)-1]
	m.queue = m.queue[:len(m.queue)-1]
	return c
}

// external returns a random upstream command; corrupt ones have a shape
// error and must be rejected as invalid_command.
func (m *model) external() (c Command, corrupt bool) {
	m.n++
	id := "c" + strconv.Itoa(m.n)
	agg := m.ids[m.r.IntN(len(m.ids))]
	m.clock = m.clock.Add(time.Duration(1+m.r.IntN(5000)) * time.Millisecond)
	e := Envelope{CommandID: id, AggregateID: agg, CorrelationID: "flow-" + id, IssuedAt: m.clock}
	s := m.state[agg]
	if m.r.IntN(5) == 0 {
		v := s.Version
		switch m.r.IntN(3) {
		case 1:
			v = max(0, v-1-m.r.Int64N(3)) // stale (or current, at version 0)
		case 2:
			v++
		}
		e.ExpectedVersion = &v
	}
	k := m.r.IntN(100)
	if s.Status == StatusNone && agg != "acc-ghost" && m.r.IntN(2) == 0 {
		k = 0 // open most accounts early, so that most commands meet one
	}
	switch {
	case k < 12:
		var od int64
		switch m.r.IntN(10) {
		case 0:
			od = math.MaxInt64
		case 1, 2, 3, 4:
			od = m.r.Int64N(500)
		}
		return &OpenAccount{Envelope: e, Owner: "owner of " + agg, Currency: m.currencies[m.r.IntN(len(m.currencies))], OverdraftLimit: od}, false
	case k < 35:
		return &DepositFunds{Envelope: e, Amount: m.amount(s), Reference: "dep"}, false
	case k < 50:
		return &WithdrawFunds{Envelope: e, Amount: m.amount(s), Reference: "wd"}, false
	case k < 80:
		to := m.ids[m.r.IntN(len(m.ids))]
		return &TransferFunds{Envelope: e, TransferID: "tr-" + id, FromAccountID: agg, ToAccountID: to, Amount: m.amount(s)}, false
	case k < 90:
		return &CloseAccount{Envelope: e}, false
	}
	return m.corrupt(e), true
}

func (m *model) amount(s Account) int64 {
	switch k := m.r.IntN(100); {
	case k < 75:
		return 1 + m.r.Int64N(1000)
	case k < 87:
		if s.Balance > 0 {
			return s.Balance // empties the account, so that closes succeed
		}
	case k < 91:
		if s.Balance >= 0 && s.OverdraftLimit >= 0 && s.Balance <= math.MaxInt64-s.OverdraftLimit && s.Balance+s.OverdraftLimit > 0 {
			return s.Balance + s.OverdraftLimit // exactly to the floor
		}
	case k < 95:
		return -m.r.Int64N(3) // 0, -1, -2: rejected
	default:
		return math.MaxInt64 - m.r.Int64N(1000) // overflows whatever it meets
	}
	return 1 + m.r.Int64N(1000)
}

func (m *model) corrupt(e Envelope) Command {
	d := &DepositFunds{Envelope: e, Amount: 10}
	switch m.r.IntN(10) {
	case 0:
		d.CommandID = ""
	case 1:
		d.CommandID += CreditSuffix
	case 2:
		d.CommandID += RefundSuffix
	case 3:
		d.AggregateID = ""
	case 4:
		d.IssuedAt = time.Time{}
	case 5:
		v := -1 - m.r.Int64N(5)
		d.ExpectedVersion = &v
	case 6:
		return &OpenAccount{Envelope: e, Owner: "x", Currency: []string{"usd", "EURO", "", "E1R", "€"}[m.r.IntN(5)]}
	case 7:
		return &OpenAccount{Envelope: e, Owner: " ", Currency: "USD"}
	case 8:
		return &OpenAccount{Envelope: e, Owner: "x", Currency: "USD", OverdraftLimit: -1 - m.r.Int64N(100)}
	case 9:
		return &TransferFunds{Envelope: e, TransferID: "tr-" + e.CommandID, FromAccountID: e.AggregateID + "-other", ToAccountID: "acc-a", Amount: 5}
	}
	return d
}

// deliver decides c against its aggregate, checks the decision, applies it
// and queues its saga commands.
func (m *model) deliver(c Command, corrupt bool) {
	m.t.Helper()
	env := c.Env()
	agg := env.AggregateID
	s := m.state[agg]
	d := Decide(s, c)
	if again := Decide(s, c); !reflect.DeepEqual(d, again) {
		m.fatalf("Decide is not deterministic on %s:\n%s\n%s", dump(c), dump(d), dump(again))
	}
	reason := Reason("")
	if d.Rejection != nil {
		reason = d.Rejection.Reason
	}
	m.stats[statKey{c.Type(), reason}]++
	if corrupt {
		m.stats[statKey{"corrupt command", ""}]++
		if reason != ReasonInvalidCommand {
			m.fatalf("corrupt command %s: got %s, want invalid_command", dump(c), dump(d))
		}
		return
	}
	if m.cmdIDs[env.CommandID] {
		m.fatalf("command id %q processed twice", env.CommandID)
	}
	m.cmdIDs[env.CommandID] = true

	if (d.Rejection == nil) == (len(d.Events) == 0) {
		m.fatalf("%s: a decision must have events or a rejection, not both or neither: %s", dump(c), dump(d))
	}
	if ev := env.ExpectedVersion; reason == ReasonVersionConflict && (ev == nil || *ev == s.Version) {
		m.fatalf("version_conflict without a stale expected_version: %s on version %d", dump(c), s.Version)
	} else if d.Rejection == nil && ev != nil && *ev != s.Version {
		m.fatalf("accepted with expected_version %d on version %d", *ev, s.Version)
	}
	m.checkSaga(s, c, d)

	next := s
	for i, e := range d.Events {
		md := e.Meta()
		want := EventMeta{
			EventID: EventID(agg, s.Version+int64(i)+1), AggregateID: agg, Version: s.Version + int64(i) + 1,
			CommandID: env.CommandID, CorrelationID: env.CorrelationID, CausationID: env.CommandID, OccurredAt: env.IssuedAt,
		}
		if *md != want {
			m.fatalf("event meta %s, want %s", dump(md), dump(want))
		}
		if m.eventIDs[md.EventID] {
			m.fatalf("event id %q emitted twice", md.EventID)
		}
		m.eventIDs[md.EventID] = true
		after := Evolve(next, e)
		m.account(next, e, after)
		next = after
	}
	m.state[agg] = next
	m.log[agg] = append(m.log[agg], d.Events...)
	m.queue = append(m.queue, d.Commands...)
	m.checkConservation()
}

// checkSaga checks the saga commands a decision issues.
func (m *model) checkSaga(s Account, c Command, d Decision) {
	switch c := c.(type) {
	case *TransferFunds:
		if d.Rejection != nil {
			if len(d.Commands) != 0 {
				m.fatalf("rejected transfer issued %s", dump(d.Commands))
			}
			return
		}
		want := &CreditTransfer{
			Envelope:   Envelope{CommandID: EventID(c.FromAccountID, s.Version+1) + "/credit", AggregateID: c.ToAccountID, CorrelationID: c.CorrelationID, IssuedAt: c.IssuedAt},
			TransferID: c.TransferID, FromAccountID: c.FromAccountID, ToAccountID: c.ToAccountID, Amount: c.Amount, Currency: s.Currency,
		}
		if len(d.Commands) != 1 || !reflect.DeepEqual(d.Commands[0], Command(want)) {
			m.fatalf("transfer issued %s, want %s", dump(d.Commands), dump(want))
		}
	case *CreditTransfer:
		if d.Rejection == nil {
			if len(d.Commands) != 0 {
				m.fatalf("accepted credit issued %s", dump(d.Commands))
			}
			return
		}
		// Every credit here was issued by Decide, so every rejection refunds.
		want := &RefundTransfer{
			Envelope:   Envelope{CommandID: c.CommandID + "/refund", AggregateID: c.FromAccountID, CorrelationID: c.CorrelationID, IssuedAt: c.IssuedAt},
			TransferID: c.TransferID, FromAccountID: c.FromAccountID, ToAccountID: c.ToAccountID, Amount: c.Amount, Currency: c.Currency,
			Reason: string(d.Rejection.Reason),
		}
		if len(d.Commands) != 1 || !reflect.DeepEqual(d.Commands[0], Command(want)) {
			m.fatalf("rejected credit issued %s, want %s", dump(d.Commands), dump(want))
		}
	case *RefundTransfer:
		if d.Rejection != nil {
			// The one way a genuine refund can fail; the money stays in flight.
			if d.Rejection.Reason != ReasonInvalidCommand || !strings.Contains(d.Rejection.Message, "overflow") {
				m.fatalf("refund rejected: %v", d.Rejection)
			}
			m.stuck[c.TransferID] = true
		} else if s.Status == StatusClosed {
			m.stats[statKey{"refund to a closed source", ""}]++
		}
		if len(d.Commands) != 0 {
			m.fatalf("refund issued %s", dump(d.Commands))
		}
	default:
		if len(d.Commands) != 0 {
			m.fatalf("%s issued %s", c.Type(), dump(d.Commands))
		}
	}
}

// account checks the money an event moves and books it.
func (m *model) account(before Account, e Event, after Account) {
	balanceIs := func(amount int64, sign int, cur string, balanceAfter int64) {
		if amount <= 0 {
			m.fatalf("%s with amount %d", e.Type(), amount)
		}
		want := i128{}.add(before.Balance)
		if sign > 0 {
			want = want.add(amount)
		} else {
			want = want.sub(amount)
		}
		if want != (i128{}.add(balanceAfter)) || after.Balance != balanceAfter {
			m.fatalf("%s: balance %d %+d×%d gave balance_after %d (state %d)", e.Type(), before.Balance, sign, amount, balanceAfter, after.Balance)
		}
		if cur != before.Currency {
			m.fatalf("%s in %s on an account in %s", e.Type(), cur, before.Currency)
		}
	}
	switch e := e.(type) {
	case *FundsDeposited:
		balanceIs(e.Amount, +1, e.Currency, e.BalanceAfter)
		m.deposits[e.Currency] = m.deposits[e.Currency].add(e.Amount)
	case *FundsWithdrawn:
		balanceIs(e.Amount, -1, e.Currency, e.BalanceAfter)
		if e.BalanceAfter < -before.OverdraftLimit {
			m.fatalf("withdrawal below the overdraft floor: %s", dump(e))
		}
		m.withdrawals[e.Currency] = m.withdrawals[e.Currency].add(e.Amount)
	case *TransferDebited:
		balanceIs(e.Amount, -1, e.Currency, e.BalanceAfter)
		if e.BalanceAfter < -before.OverdraftLimit {
			m.fatalf("transfer below the overdraft floor: %s", dump(e))
		}
		if m.debited[e.TransferID] {
			m.fatalf("transfer %s debited twice", e.TransferID)
		}
		m.debited[e.TransferID] = true
		m.inflight[e.TransferID] = inflight{e.Amount, e.Currency}
	case *TransferCredited:
		balanceIs(e.Amount, +1, e.Currency, e.BalanceAfter)
		m.settle(e.TransferID, e.Amount, e.Currency)
	case *TransferRefunded:
		balanceIs(e.Amount, +1, e.Currency, e.BalanceAfter)
		m.settle(e.TransferID, e.Amount, e.Currency)
	case *AccountOpened:
		if after.Balance != 0 || after.Status != StatusOpen {
			m.fatalf("opened account %s", dump(after))
		}
	case *AccountClosed:
		if before.Balance != 0 || after.Status != StatusClosed {
			m.fatalf("closed account %s", dump(after))
		}
	default:
		m.fatalf("unexpected event %s", dump(e))
	}
}

func (m *model) settle(tid string, amount int64, cur string) {
	f, ok := m.inflight[tid]
	if !ok || f.amount != amount || f.currency != cur {
		m.fatalf("transfer %s settled with %d %s, in flight: %v (%v)", tid, amount, cur, f, ok)
	}
	delete(m.inflight, tid)
	m.settled[tid]++
}

// checkConservation: per currency, balances + in flight = deposits − withdrawals.
func (m *model) checkConservation() {
	for _, cur := range m.currencies {
		var have i128
		for _, s := range m.state {
			if s.Currency == cur {
				have = have.add(s.Balance)
			}
		}
		for _, f := range m.inflight {
			if f.currency == cur {
				have = have.add(f.amount)
			}
		}
		if want := m.deposits[cur].minus(m.withdrawals[cur]); have != want {
			m.fatalf("%s not conserved: balances + in flight = %s, deposits − withdrawals = %s", cur, have, want)
		}
	}
	for id, s := range m.state {
		if s.Status == StatusNone && (s.Balance != 0 || s.Currency != "") {
			m.fatalf("unopened account %s holds %s", id, dump(s))
		}
	}
}

func (m *model) finish() {
	for agg, events := range m.log {
		for i, e := range events {
			if md := e.Meta(); md.Version != int64(i)+1 || md.AggregateID != agg {
				m.fatalf("%s: event %d has version %d, aggregate %q", agg, i, md.Version, md.AggregateID)
			}
		}
		if got := Fold(Account{}, events); !reflect.DeepEqual(got, m.state[agg]) {
			m.fatalf("%s: Fold of %d events = %s, state after deciding = %s", agg, len(events), dump(got), dump(m.state[agg]))
		}
	}
	for tid := range m.debited {
		switch n := m.settled[tid]; {
		case n == 1:
		case n == 0 && m.stuck[tid]:
			m.stats[statKey{"refund stuck on int64 overflow", ""}]++
		default:
			m.fatalf("transfer %s settled %d times", tid, n)
		}
	}
	for tid := range m.inflight {
		if !m.stuck[tid] {
			m.fatalf("transfer %s still in flight after draining", tid)
		}
	}
}

// i128 is a two's-complement 128-bit integer: sums of int64 balances
// legitimately exceed int64 when the test drives accounts near MaxInt64.
type i128 struct{ hi, lo uint64 }

func (a i128) add(x int64) i128 {
	lo, carry := bits.Add64(a.lo, uint64(x), 0)
	hi, _ := bits.Add64(a.hi, signExt(x), carry)
	return i128{hi, lo}
}

func (a i128) sub(x int64) i128 {
	lo, borrow := bits.Sub64(a.lo, uint64(x), 0)
	hi, _ := bits.Sub64(a.hi, signExt(x), borrow)
	return i128{hi, lo}
}

func (a i128) minus(b i128) i128 {
	lo, borrow := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, borrow)
	return i128{hi, lo}
}

func (a i128) String() string {
	v := new(big.Int).SetUint64(a.hi)
	v.Lsh(v, 64).Or(v, new(big.Int).SetUint64(a.lo))
	if a.hi>>63 == 1 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return v.String()
}

func signExt(x int64) uint64 {
	if x < 0 {
		return math.MaxUint64
	}
	return 0
}

// The conservation check is only as good as its arithmetic.
func TestI128(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a i128
	want := new(big.Int)
	for i := range 10000 {
		x := int64(r.Uint64())
		if i%7 == 0 {
			x = []int64{math.MinInt64, math.MaxInt64, -1, 0}[i%4]
		}
		if r.IntN(2) == 0 {
			a, want = a.add(x), want.Add(want, big.NewInt(x))
		} else {
			a, want = a.sub(x), want.Sub(want, big.NewInt(x))
		}
		var b i128
		b = b.add(x)
		if got := a.minus(b).String(); got != new(big.Int).Sub(want, big.NewInt(x)).String() {
			t.Fatalf("step %d: minus = %s", i, got)
		}
		if a.String() != want.String() {
			t.Fatalf("step %d: %s, want %s", i, a, want)
		}
	}
}
