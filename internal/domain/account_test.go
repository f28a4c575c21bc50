package domain

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

func TestEvolve(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	m := func(v int64) EventMeta {
		return EventMeta{EventID: fmt.Sprint("e/", v), AggregateID: src, Version: v, CommandID: "c", CausationID: "c", OccurredAt: at(int(v))}
	}
	history := []struct {
		event Event
		want  Account
	}{
		{&AccountOpened{EventMeta: m(1), Owner: "Ada", Currency: "EUR", OverdraftLimit: 100},
			Account{ID: src, Owner: "Ada", Currency: "EUR", OverdraftLimit: 100, Status: StatusOpen, Version: 1, UpdatedAt: at(1)}},
		{&FundsDeposited{EventMeta: m(2), Amount: 500, Currency: "EUR", BalanceAfter: 500},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: 500, OverdraftLimit: 100, Status: StatusOpen, Version: 2, UpdatedAt: at(2)}},
		{&FundsWithdrawn{EventMeta: m(3), Amount: 550, Currency: "EUR", BalanceAfter: -50},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: -50, OverdraftLimit: 100, Status: StatusOpen, Version: 3, UpdatedAt: at(3)}},
		{&TransferCredited{EventMeta: m(4), TransferID: "x", FromAccountID: dst, Amount: 80, Currency: "EUR", BalanceAfter: 30},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: 30, OverdraftLimit: 100, Status: StatusOpen, Version: 4, UpdatedAt: at(4)}},
		{&TransferDebited{EventMeta: m(5), TransferID: "y", ToAccountID: dst, Amount: 30, Currency: "EUR", BalanceAfter: 0},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: 0, OverdraftLimit: 100, Status: StatusOpen, Version: 5, UpdatedAt: at(5)}},
		{&AccountClosed{EventMeta: m(6)},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: 0, OverdraftLimit: 100, Status: StatusClosed, Version: 6, UpdatedAt: at(6)}},
		{&TransferRefunded{EventMeta: m(7), TransferID: "y", ToAccountID: dst, Amount: 30, Currency: "EUR", BalanceAfter: 30, Reason: "account_closed"},
			Account{ID: src, Owner: "Ada", Currency: "EUR", Balance: 30, OverdraftLimit: 100, Status: StatusClosed, Version: 7, UpdatedAt: at(7)}},
	}
	var s Account
	var all []Event
	for _, h := range history {
		s = Evolve(s, h.event)
		if !reflect.DeepEqual(s, h.want) {
			t.Fatalf("after %s:\n got %s\nwant %s", h.event.Type(), dump(s), dump(h.want))
		}
		all = append(all, h.event)
	}
	if got := Fold(Account{}, all); !reflect.DeepEqual(got, s) {
		t.Fatalf("Fold = %s, want %s", dump(got), dump(s))
	}
	if got := Fold(s, nil); !reflect.DeepEqual(got, s) {
		t.Fatalf("Fold with no events changed the state")
	}

	// Unknown, nil and typed-nil events are ignored rather than panicking.
	for _, e := range []Event{nil, (*AccountOpened)(nil), (*FundsDeposited)(nil), (*FundsWithdrawn)(nil),
		(*TransferDebited)(nil), (*TransferCredited)(nil), (*TransferRefunded)(nil), (*AccountClosed)(nil), foreignEvent{}} {
		if got := Evolve(s, e); !reflect.DeepEqual(got, s) {
			t.Errorf("Evolve(%T) changed the state to %s", e, dump(got))
		}
	}
}

type foreignEvent struct{}

func (foreignEvent) Meta() *EventMeta { panic("Evolve must not call Meta on an unknown event") }
func (foreignEvent) Type() string     { return "foreign" }

func TestEventTypes(t *testing.T) {
	for e, want := range map[Event]string{
		&AccountOpened{}: "ledger.events.AccountOpened", &FundsDeposited{}: "ledger.events.FundsDeposited",
		&FundsWithdrawn{}: "ledger.events.FundsWithdrawn", &TransferDebited{}: "ledger.events.TransferDebited",
		&TransferCredited{}: "ledger.events.TransferCredited", &TransferRefunded{}: "ledger.events.TransferRefunded",
		&AccountClosed{}: "ledger.events.AccountClosed",
	} {
		if got := e.Type(); got != want {
			t.Errorf("%T.Type() = %q, want %q", e, got, want)
		}
	}
	for c, want := range map[Command]string{
		&OpenAccount{}: "ledger.commands.OpenAccount", &DepositFunds{}: "ledger.commands.DepositFunds",
		&WithdrawFunds{}: "ledger.commands.WithdrawFunds", &TransferFunds{}: "ledger.commands.TransferFunds",
		&CreditTransfer{}: "ledger.commands.CreditTransfer", &RefundTransfer{}: "ledger.commands.RefundTransfer",
		&CloseAccount{}: "ledger.commands.CloseAccount",
	} {
		if got := c.Type(); got != want {
			t.Errorf("%T.Type() = %q, want %q", c, got, want)
		}
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{StatusNone: "none", StatusOpen: "open", StatusClosed: "closed", 9: "Status(9)"} {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

// The processors hold one Account per aggregate: keep the struct small and
// make sure Evolve does not retain the event's (possibly large) buffers.
func TestAccountMemory(t *testing.T) {
	if size := unsafe.Sizeof(Account{}); size > 104 {
		t.Errorf("sizeof(Account) = %d, want <= 104", size)
	}

	// Strings that share one big buffer, as a decoder might hand them out.
	const n = 20000
	buf := make([]byte, 0, 1<<20)
	opened := make([]*AccountOpened, n)
	for i := range opened {
		start := len(buf)
		buf = fmt.Appendf(buf, "acct-%08x-4f2a-9c1d-%012x", i, i*7919) // 36 bytes, uuid-sized
		id := unsafe.String(&buf[start], len(buf)-start)
		opened[i] = &AccountOpened{EventMeta: EventMeta{AggregateID: id, Version: 1, OccurredAt: t0}, Owner: "Ada Lovelace Ltd", Currency: "EUR"}
		if len(buf) > cap(buf)-64 {
			buf = make([]byte, 0, 1<<20)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	accounts := make([]Account, n)
	for i, e := range opened {
		accounts[i] = Evolve(Account{}, e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perAccount := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes held per aggregate (36-byte id, 16-byte owner)", perAccount)
	if perAccount > 300 {
		t.Errorf("%.0f bytes held per aggregate, want <= 300", perAccount)
	}
	runtime.KeepAlive(accounts)
	runtime.KeepAlive(opened)
	// Evolve copied the id: it must not alias the shared buffer.
	if unsafe.StringData(accounts[0].ID) == unsafe.StringData(opened[0].AggregateID) {
		t.Error("Evolve retained the event's id buffer")
	}
}
