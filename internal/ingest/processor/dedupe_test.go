package processor

import (
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

// TestIndexComparesWholeIDs pins that dedupe decides on ids, not hashes.
// Regression: the index was keyed by a 64-bit hash of the command id, so a
// collision would have answered a new command with another's outcome and
// never processed it. Now the index holds the ids themselves; two ids that
// differ anywhere, and an upstream id equal to a saga id, are distinct.
func TestIndexComparesWholeIDs(t *testing.T) {
	x := newIndex(0)
	long := string(make([]byte, 4096))
	x.put(long+"a", false, firstOutcome{version: 1})
	x.put("acc-1/3/credit", true, firstOutcome{version: 2})
	for _, c := range []struct {
		id   string
		saga bool
		ok   bool
	}{
		{long + "a", false, true},
		{long + "b", false, false}, // same length, same prefix, one byte apart
		{long, false, false},
		{"acc-1/3/credit", true, true},
		{"acc-1/3/credit", false, false}, // another id space
	} {
		if _, ok := x.get(c.id, c.saga); ok != c.ok {
			t.Errorf("get(%.12q…, saga=%v) found=%v, want %v", c.id[len(c.id)-min(len(c.id), 12):], c.saga, ok, c.ok)
		}
	}
}

// TestDedupeHeaderRoundTrip: the first outcome written with every result
// reads back the same, and rebuilds the first result.
func TestDedupeHeaderRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 10_000_000, time.UTC)
	res := &codec.CommandResult{CommandID: "c", AggregateID: "acc", CommandType: domain.TypeDepositFunds, Status: codec.StatusAccepted,
		Version: 7, Events: []codec.EventRef{{EventID: "acc/7", Type: domain.TypeFundsDeposited, Version: 7}}, ProcessedAt: at}
	fp := fingerprint(&domain.DepositFunds{Envelope: domain.Envelope{CommandID: "c", AggregateID: "acc"}, Amount: 5})
	o := summarize(res, fp)
	got, err := parseDedupeHeader(o.appendHeader(nil))
	if err != nil || got != o {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, o)
	}
	again := got.result("c", "acc", "")
	if again.Version != 7 || len(again.Events) != 1 || again.Events[0] != res.Events[0] || !again.ProcessedAt.Equal(at) {
		t.Fatalf("rebuilt result %+v, want %+v", again, res)
	}
	rej := *res
	rej.Status, rej.Reason, rej.Events = codec.StatusRejected, string(domain.ReasonDeadLettered), nil
	if got := summarize(&rej, fp).result("c", "acc", ""); got.Reason != "dead_lettered" {
		t.Fatalf("rejected first outcome rebuilt as %+v", got)
	}
	for _, bad := range [][]byte{nil, {2}, append(o.appendHeader(nil), 0)} {
		if _, err := parseDedupeHeader(bad); err == nil {
			t.Errorf("parseDedupeHeader(%x) accepted", bad)
		}
	}
}

// TestFingerprint: a retry that differs only in issued_at or correlation_id
// is the same request; any field of the body, the account, the type or the
// expected version makes another.
func TestFingerprint(t *testing.T) {
	v := int64(3)
	base := func() *domain.TransferFunds {
		return &domain.TransferFunds{Envelope: domain.Envelope{CommandID: "k", AggregateID: "a", CorrelationID: "x", IssuedAt: time.Unix(1, 0)},
			TransferID: "t", FromAccountID: "a", ToAccountID: "b", Amount: 100, Reference: "r"}
	}
	want := fingerprint(base())
	same := base()
	same.CorrelationID, same.IssuedAt = "y", time.Unix(2, 0)
	if fingerprint(same) != want {
		t.Error("issued_at or correlation_id changed the fingerprint")
	}
	for name, change := range map[string]func(*domain.TransferFunds){
		"aggregate":        func(c *domain.TransferFunds) { c.AggregateID = "a2" },
		"amount":           func(c *domain.TransferFunds) { c.Amount = 101 },
		"to":               func(c *domain.TransferFunds) { c.ToAccountID = "c" },
		"transfer id":      func(c *domain.TransferFunds) { c.TransferID = "t2" },
		"reference":        func(c *domain.TransferFunds) { c.Reference = "r2" },
		"expected version": func(c *domain.TransferFunds) { c.ExpectedVersion = &v },
		"field boundary":   func(c *domain.TransferFunds) { c.TransferID, c.FromAccountID = "ta", "" },
	} {
		c := base()
		change(c)
		if fingerprint(c) == want {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	dep := &domain.DepositFunds{Envelope: domain.Envelope{CommandID: "k", AggregateID: "a"}, Amount: 100, Reference: "r"}
	wd := &domain.WithdrawFunds{Envelope: domain.Envelope{CommandID: "k", AggregateID: "a"}, Amount: 100, Reference: "r"}
	if fingerprint(dep) == fingerprint(wd) {
		t.Error("another type, same fingerprint")
	}
}
