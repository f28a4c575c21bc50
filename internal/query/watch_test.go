package query

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestReadYourWritesWakesOnChange, against real Redis: a request waiting
// for a version is answered when the projector's sink announces the change,
// not by polling (the poll interval here is an hour, so only the
// announcement can answer it), through the generation-following reader.
func TestReadYourWritesWakesOnChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	gen := redissink.GenerationPrefix(prefix, 1)
	if err := redissink.SetGeneration(ctx, rdb, prefix, 1); err != nil {
		t.Fatal(err)
	}
	sink, err := redissink.New(rdb, redissink.Options{Prefix: gen})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	ev := func(v any) projection.Event {
		e, err := projection.EventOf(v)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := sink.Apply(ctx, []projection.Event{ev(&codec.AccountOpened{EventID: "w/1", AggregateID: "w", Version: 1, CommandID: "c1", OccurredAt: at, Owner: "o", Currency: "EUR"})}); err != nil {
		t.Fatal(err)
	}
	reader, err := redissink.NewReader(rdb, redissink.Options{Prefix: prefix}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	watcher := redissink.NewWatcher(rdb, prefix)
	go func() { _ = watcher.Run(ctx) }()
	h, err := New(Config{Accounts: reader, Transactions: reader, Transfers: reader, Outcomes: reader,
		History: &fakeStore{}, Analytics: &fakeStore{}, Changes: watcher, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	time.Sleep(200 * time.Millisecond) // the subscription is in place

	type answer struct {
		status int
		view   projection.AccountView
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/v1/accounts/w?min_version=2&wait=10s")
		if err != nil {
			done <- answer{status: -1}
			return
		}
		defer resp.Body.Close()
		var v projection.AccountView
		_ = json.NewDecoder(resp.Body).Decode(&v)
		done <- answer{resp.StatusCode, v}
	}()
	time.Sleep(300 * time.Millisecond) // the request is waiting
	if err := sink.Apply(ctx, []projection.Event{ev(&codec.FundsDeposited{EventID: "w/2", AggregateID: "w", Version: 2, CommandID: "c2", OccurredAt: at, Amount: 5, Currency: "EUR", BalanceAfter: 5})}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.status != 200 || a.view.Version != 2 || a.view.Balance != 5 {
		t.Fatalf("the waiting read got %d %+v, want 200 at version 2 (woken by the announcement)", a.status, a.view)
	}
}
