package projectiontest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// Run is the contract suite: every projection.View passes it. newView
// returns an empty view, isolated from every other (a fresh key prefix,
// database, …). Transfers and recent transactions are checked too when the
// view implements projection.TransferReader / projection.TransactionReader.
func Run(t *testing.T, newView func(t *testing.T) projection.View) {
	h := Generate(7, "", 12, 600)
	if len(h.Events) < 500 {
		t.Fatalf("generator made %d events", len(h.Events))
	}

	t.Run("FoldsHistoryInBatches", func(t *testing.T) {
		v := newView(t)
		ApplyInBatches(t, v, h.Events, 1, 7, 50, 1000)
		CheckHistory(t, v, h)
	})
	t.Run("SameEventsTwiceChangeNothing", func(t *testing.T) {
		v := newView(t)
		ApplyInBatches(t, v, h.Events, 100)
		before := Snapshot(t, v, h)
		ApplyInBatches(t, v, h.Events, 100)
		if after := Snapshot(t, v, h); !reflect.DeepEqual(before, after) {
			t.Fatalf("second application changed the view:\n%s", diff(before, after))
		}
		CheckHistory(t, v, h)
	})
	t.Run("ReplayFromStartOverLiveView", func(t *testing.T) {
		v := newView(t)
		half := len(h.Events) / 2
		ApplyInBatches(t, v, h.Events[:half], 64)
		ApplyInBatches(t, v, h.Events, 13) // a rebuild/reset starting at offset 0
		CheckHistory(t, v, h)
	})
	t.Run("RetryAfterPartialFailure", func(t *testing.T) {
		v := newView(t)
		// A failed Apply may have written any subset; the projector retries the
		// whole batch. Simulate a failure after every third event of each batch.
		for start := 0; start < len(h.Events); start += 40 {
			batch := h.Events[start:min(start+40, len(h.Events))]
			var partial []projection.Event
			for i, e := range batch {
				if i%3 == 0 {
					partial = append(partial, e)
				}
			}
			apply(t, v, partial)
			apply(t, v, batch)
		}
		CheckHistory(t, v, h)
	})
	t.Run("DuplicatesInsideOneBatch", func(t *testing.T) {
		v := newView(t)
		var doubled []projection.Event
		for _, e := range h.Events {
			doubled = append(doubled, e, e)
		}
		ApplyInBatches(t, v, doubled, 333)
		CheckHistory(t, v, h)
	})
	t.Run("GapOrOutOfOrderIsNotApplied", func(t *testing.T) {
		v := newView(t)
		g := Generate(11, "gap-", 1, 8)
		ev := g.Events
		id := ev[0].AggregateID
		apply(t, v, ev[:2])
		apply(t, v, []projection.Event{ev[3]}) // v4 after v2
		want := accountAfter(ev[:2])
		checkAccount(t, v, id, want, true)
		apply(t, v, []projection.Event{ev[1], ev[0]}) // old versions, reversed
		checkAccount(t, v, id, want, true)
		// A later event of an account never opened is not applied either.
		other := Generate(12, "gap2-", 1, 4).Events
		apply(t, v, other[1:3])
		checkAccount(t, v, other[0].AggregateID, projection.AccountView{}, false)
		// Once the missing events arrive, everything applies.
		apply(t, v, ev)
		checkAccount(t, v, id, g.Accounts[id], true)
		apply(t, v, other)
		checkAccount(t, v, other[0].AggregateID, accountAfter(other), true)
	})
	t.Run("TransferStatusOnlyMovesForward", func(t *testing.T) {
		// The credit or refund of a transfer may be consumed before its debit
		// (another partition). Feed every settlement first: the accounts see
		// gaps and ignore them, the transfers must not go back to pending.
		v := newView(t)
		var settlements []projection.Event
		for _, e := range h.Events {
			if tv, ok := projection.TransferOf(e); ok && tv.Status != projection.TransferPending {
				settlements = append(settlements, e)
			}
		}
		apply(t, v, settlements)
		ApplyInBatches(t, v, h.Events, 200)
		CheckHistory(t, v, h)
	})
	t.Run("ExtremesOfTheInputBounds", func(t *testing.T) {
		// Regression: an issued_at past 9999 wedged the Redis view (JSON),
		// and one long id the ClickHouse view. Everything the domain's
		// input bounds admit must project.
		v := newView(t)
		id := strings.Repeat("a", domain.MaxIDBytes-2) + "é" // multi-byte, at the bound
		owner := strings.Repeat("ö", domain.MaxOwnerBytes/2)
		ref := strings.Repeat("r", domain.MaxReferenceBytes)
		first, last := domain.MinIssuedAt, domain.MaxIssuedAt.Add(-time.Millisecond)
		cmd := strings.Repeat("c", domain.MaxIDBytes)
		evs := []projection.Event{
			{AggregateID: id, Version: 1, EventID: domain.EventID(id, 1), OccurredAt: first, Value: &codec.AccountOpened{
				EventID: domain.EventID(id, 1), AggregateID: id, Version: 1, CommandID: cmd, CorrelationID: cmd, CausationID: cmd,
				OccurredAt: first, Owner: owner, Currency: "EUR", OverdraftLimit: domain.MaxAmount}},
			{AggregateID: id, Version: 2, EventID: domain.EventID(id, 2), OccurredAt: last, Value: &codec.FundsDeposited{
				EventID: domain.EventID(id, 2), AggregateID: id, Version: 2, CommandID: cmd, CorrelationID: cmd, CausationID: cmd,
				OccurredAt: last, Amount: domain.MaxAmount, Currency: "EUR", BalanceAfter: domain.MaxAmount, Reference: ref}},
			{AggregateID: id, Version: 3, EventID: domain.EventID(id, 3), OccurredAt: last, Value: &codec.FundsWithdrawn{
				EventID: domain.EventID(id, 3), AggregateID: id, Version: 3, CommandID: cmd + "2", CorrelationID: cmd, CausationID: cmd,
				OccurredAt: last, Amount: domain.MaxAmount, Currency: "EUR", BalanceAfter: -domain.MaxAmount + domain.MaxAmount, Reference: ref}},
		}
		apply(t, v, evs)
		got, ok, err := v.Account(context.Background(), id)
		if err != nil || !ok {
			t.Fatalf("account at the bounds: ok=%v err=%v", ok, err)
		}
		if got.Owner != owner || got.Balance != 0 || got.Version != 3 || got.OverdraftLimit != domain.MaxAmount || !got.UpdatedAt.Equal(last) {
			t.Fatalf("account at the bounds: %+v", got)
		}
	})
	t.Run("UnknownValuesAreSkipped", func(t *testing.T) {
		v := newView(t)
		g := Generate(13, "unk-", 2, 30)
		stray := projection.Event{Type: "ledger.commands.OpenAccount", Value: &codec.OpenAccount{AggregateID: g.Events[0].AggregateID},
			AggregateID: g.Events[0].AggregateID, Version: 1, EventID: "stray", OccurredAt: Base}
		batch := append([]projection.Event{stray}, g.Events...)
		apply(t, v, batch)
		CheckHistory(t, v, g)
	})
}

func apply(t *testing.T, v projection.View, batch []projection.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Apply(ctx, batch); err != nil {
		t.Fatalf("apply %d events: %v", len(batch), err)
	}
}

// ApplyInBatches applies events in consecutive batches whose sizes cycle through sizes.
func ApplyInBatches(t *testing.T, v projection.Sink, events []projection.Event, sizes ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, start := 0, 0; start < len(events); i++ {
		end := min(start+sizes[i%len(sizes)], len(events))
		if err := v.Apply(ctx, events[start:end]); err != nil {
			t.Fatalf("apply events %d..%d: %v", start, end, err)
		}
		start = end
	}
}

func accountAfter(events []projection.Event) projection.AccountView {
	var a projection.AccountView
	ok := false
	for _, e := range events {
		a, _ = projection.NextAccount(a, ok, e)
		ok = true
	}
	return a
}

// Norm puts times in UTC so views that read them back in another location compare equal.
func Norm(a projection.AccountView) projection.AccountView {
	a.UpdatedAt = a.UpdatedAt.UTC()
	return a
}

func checkAccount(t *testing.T, v projection.AccountReader, id string, want projection.AccountView, wantOK bool) {
	t.Helper()
	got, ok, err := v.Account(context.Background(), id)
	if err != nil {
		t.Fatalf("account %s: %v", id, err)
	}
	if ok != wantOK {
		t.Fatalf("account %s: found=%v, want %v (%+v)", id, ok, wantOK, got)
	}
	if ok && Norm(got) != Norm(want) {
		t.Fatalf("account %s:\n got %+v\nwant %+v", id, got, want)
	}
}

// CheckHistory checks that the view holds exactly h's final views: every
// account (and, when the view reads them, transfers and recent
// transactions), and that the accounts agree with the audit fold.
func CheckHistory(t *testing.T, v projection.View, h History) {
	t.Helper()
	ctx := context.Background()
	var l audit.Ledger
	for _, e := range h.Events {
		l.Add(e.Value)
	}
	if p := l.Check(false); len(p) > 0 {
		t.Fatalf("generated history breaks invariants: %v", p)
	}
	for id, want := range h.Accounts {
		checkAccount(t, v, id, want, true)
		a := l.Accounts[id]
		got, _, _ := v.Account(ctx, id)
		if got.Balance != a.Balance || got.Version != a.Version || got.Currency != a.Currency || (got.Status == projection.StatusClosed) != a.Closed {
			t.Fatalf("account %s: view %+v, audit fold %+v", id, got, *a)
		}
	}
	if tr, ok := v.(projection.TransferReader); ok {
		for id, want := range h.Transfers {
			got, ok, err := tr.Transfer(ctx, id)
			if err != nil || !ok {
				t.Fatalf("transfer %s: found=%v err=%v", id, ok, err)
			}
			got.UpdatedAt = got.UpdatedAt.UTC()
			if got != want {
				t.Fatalf("transfer %s:\n got %+v\nwant %+v", id, got, want)
			}
			if st := l.Transfers[id].Status(); st != got.Status {
				t.Fatalf("transfer %s: view %s, audit %s", id, got.Status, st)
			}
		}
	}
	if tr, ok := v.(projection.TransactionReader); ok {
		for id, want := range h.Txs {
			got, err := tr.RecentTransactions(ctx, id, 0)
			if err != nil {
				t.Fatalf("transactions of %s: %v", id, err)
			}
			for i := range got {
				got[i].OccurredAt = got[i].OccurredAt.UTC()
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("transactions of %s: got %d, want %d entries:\n%s", id, len(got), len(want), diff(got, want))
			}
			if n := min(5, len(want)); n > 0 {
				got, err := tr.RecentTransactions(ctx, id, n)
				if err != nil || len(got) != n || got[0].EventID != want[0].EventID {
					t.Fatalf("transactions of %s limit %d: %d entries, err %v", id, n, len(got), err)
				}
			}
		}
	}
}

// Snapshot reads back every view of h's accounts (and transfers and
// transactions when the view reads them), for before/after comparisons.
func Snapshot(t *testing.T, v projection.View, h History) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	ids := make([]string, 0, len(h.Accounts))
	for id := range h.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a, ok, err := v.Account(ctx, id)
		if err != nil {
			t.Fatalf("account %s: %v", id, err)
		}
		out["account/"+id] = fmt.Sprintf("%v %+v", ok, Norm(a))
		if tr, isTR := v.(projection.TransactionReader); isTR {
			l, err := tr.RecentTransactions(ctx, id, 0)
			if err != nil {
				t.Fatalf("transactions of %s: %v", id, err)
			}
			out["tx/"+id] = fmt.Sprintf("%+v", l)
		}
	}
	if tr, ok := v.(projection.TransferReader); ok {
		for id := range h.Transfers {
			x, ok, err := tr.Transfer(ctx, id)
			if err != nil {
				t.Fatalf("transfer %s: %v", id, err)
			}
			out["transfer/"+id] = fmt.Sprintf("%v %+v", ok, x)
		}
	}
	return out
}

func diff(a, b any) string {
	return fmt.Sprintf(" got %+v\nwant %+v", a, b)
}
