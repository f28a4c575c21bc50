package redissink_test

import (
	"context"
	"testing"
	"time"

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
