package chsink

import (
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

// TestRedact: after Redact of one account's events, no row of ledger_events
// or account_balances holds its owner or references, the other accounts'
// rows keep theirs, and balances and versions are unchanged. (That a later
// event does not bring the owner back is e2e TestErase's.)
func TestRedact(t *testing.T) {
	conn, opts, v := setup(t, 0)
	db := opts.Database
	h := generate(t, 2, "rd-", 4, 40)
	ctx := ctxFor(t)
	if err := v.Apply(ctx, h.events); err != nil {
		t.Fatal(err)
	}
	id := h.events[0].AggregateID
	var mine []projection.Event
	for _, e := range h.events {
		if e.AggregateID == id {
			e.Redacted = true
			mine = append(mine, e)
		}
	}
	before, _, err := v.Account(ctx, id)
	if err != nil || before.Owner == "" {
		t.Fatalf("account %s before: %+v %v", id, before, err)
	}
	if err := v.Redact(ctx, mine); err != nil {
		t.Fatal(err)
	}
	count := func(q string, args ...any) uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for count("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := count("SELECT count() FROM "+db+".ledger_events WHERE aggregate_id = ? AND (owner != '' OR reference != '' OR correlation_id != '')", id); n != 0 {
		t.Fatalf("%d event rows of %s still hold personal data", n, id)
	}
	if n := count("SELECT count() FROM "+db+".account_balances WHERE account_id = ? AND owner != ''", id); n != 0 {
		t.Fatalf("%d balance rows of %s still hold the owner", n, id)
	}
	if n := count("SELECT count() FROM "+db+".account_balances WHERE account_id != ? AND owner != ''", id); n == 0 {
		t.Fatal("the other accounts lost their owners")
	}
	after, _, err := v.Account(ctx, id)
	if err != nil || after.Owner != "" || after.Balance != before.Balance || after.Version != before.Version {
		t.Fatalf("account %s after: %+v (%v), before %+v", id, after, err, before)
	}
}
