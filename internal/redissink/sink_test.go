package redissink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

func newSink(t *testing.T, opts redissink.Options) *redissink.Sink {
	t.Helper()
	rdb, prefix := testenv.RedisClient(t)
	opts.Prefix = prefix
	s, err := redissink.New(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRedisContract(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projection.View { return newSink(t, redissink.Options{}) })
}

func TestPrefixWithHashTagRefused(t *testing.T) {
	if _, err := redissink.New(nil, redissink.Options{Prefix: "a{b}:"}); err == nil {
		t.Fatal("prefix with a hash tag accepted")
	}
}

func TestRecentTransactionsBounded(t *testing.T) {
	s := newSink(t, redissink.Options{MaxTx: 5})
	h := projectiontest.Generate(5, "", 2, 80)
	projectiontest.ApplyInBatches(t, s, h.Events, 30)
	for id, want := range h.Txs {
		got, err := s.RecentTransactions(context.Background(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) > 5 {
			want = want[:5]
		}
		if len(got) != len(want) || (len(got) > 0 && got[0].EventID != want[0].EventID) {
			t.Fatalf("%s: %d entries, want %d", id, len(got), len(want))
		}
	}
}

func TestCommandOutcomes(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond) // the server expires keys by its own clock
	s := newSink(t, redissink.Options{OutcomeTTL: time.Hour, Now: func() time.Time { return now }})
	ctx := context.Background()
	first := projection.Outcome{CommandID: "c1", AggregateID: "a", CommandType: "ledger.commands.WithdrawFunds",
		Status: "rejected", Reason: "insufficient_funds", Message: "no", Version: 3, ProcessedAt: now.Add(-time.Minute)}
	second := first
	second.Status, second.Reason = "accepted", ""
	expired := projection.Outcome{CommandID: "c2", Status: "accepted", ProcessedAt: now.Add(-2 * time.Hour)}
	if err := s.ApplyOutcomes(ctx, []projection.Outcome{first, expired}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyOutcomes(ctx, []projection.Outcome{second}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.CommandOutcome(ctx, "c1", "")
	if err != nil || !ok || got != first {
		t.Fatalf("c1: %+v ok=%v err=%v, want %+v", got, ok, err, first)
	}
	if _, ok, _ := s.CommandOutcome(ctx, "c2", ""); ok {
		t.Fatal("expired outcome written")
	}
	if _, ok, _ := s.CommandOutcome(ctx, "nope", ""); ok {
		t.Fatal("unknown command found")
	}

	// The id used for another account (on another partition): its outcome
	// is kept beside the first, and read by account.
	other := first
	other.AggregateID, other.Status, other.Reason, other.Version = "b", "accepted", "", 7
	otherAgain := other
	otherAgain.Version = 8
	if err := s.ApplyOutcomes(ctx, []projection.Outcome{other, otherAgain}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		account string
		want    projection.Outcome
	}{{"", first}, {"a", first}, {"b", other}, {"z", first}} {
		got, ok, err := s.CommandOutcome(ctx, "c1", c.account)
		if err != nil || !ok || got != c.want {
			t.Errorf("c1 for %q: %+v ok=%v err=%v, want %+v", c.account, got, ok, err, c.want)
		}
	}
}

// TestHotAccountInOneBatch: a batch holding hundreds of events of one
// account (more than one script call carries) applies them all, in order,
// and its redelivery, also split across calls, changes nothing.
func TestHotAccountInOneBatch(t *testing.T) {
	s := newSink(t, redissink.Options{MaxTx: 1000})
	const deposits = 250
	at := projectiontest.Base
	id := "hot-1"
	batch := []projection.Event{mustEvent(t, &codec.AccountOpened{EventID: id + "/1", AggregateID: id, Version: 1, CommandID: "c0",
		OccurredAt: at, Owner: "o", Currency: "EUR"})}
	for v := int64(2); v <= deposits+1; v++ {
		batch = append(batch, mustEvent(t, &codec.FundsDeposited{EventID: fmt.Sprintf("%s/%d", id, v), AggregateID: id, Version: v,
			CommandID: fmt.Sprintf("c%d", v), OccurredAt: at.Add(time.Duration(v) * time.Second), Amount: 10, Currency: "EUR", BalanceAfter: 10 * (v - 1)}))
	}
	check := func(stage string, applied, dups int64) {
		t.Helper()
		if st := s.Stats(); st.Applied != applied || st.Duplicates != dups || st.Gaps != 0 {
			t.Fatalf("%s: %+v, want %d applied, %d duplicates", stage, st, applied, dups)
		}
		a, ok, err := s.Account(context.Background(), id)
		if err != nil || !ok || a.Version != deposits+1 || a.Balance != 10*deposits || a.Owner != "o" || a.Status != projection.StatusOpen {
			t.Fatalf("%s: account %+v (%v, %v)", stage, a, ok, err)
		}
		txs, err := s.RecentTransactions(context.Background(), id, 0)
		if err != nil || len(txs) != deposits || txs[0].Version != deposits+1 || txs[deposits-1].Version != 2 {
			t.Fatalf("%s: %d transactions (%v), want %d newest first", stage, len(txs), err, deposits)
		}
	}
	projectiontest.ApplyInBatches(t, s, batch, len(batch))
	check("first delivery", deposits+1, 0)
	projectiontest.ApplyInBatches(t, s, batch, len(batch))
	check("redelivery", deposits+1, deposits+1)
}

func mustEvent(t *testing.T, v any) projection.Event {
	t.Helper()
	e, err := projection.EventOf(v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
