package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// TestIdempotencyKeysOverHTTP reproduces, on the real stack over HTTP, the
// defects of issue "exactly-once without exceptions": one command id used
// for a transfer A→C and then B→C (A and B on different partitions) was
// answered with the first request's outcome while B was debited anyway, and
// the credit, whose id was derived from the client's id, was deduplicated
// away at C: money lost. Now the second transfer is its own request with
// its own answer, both credits arrive, the same id with another body is
// refused, and GET /v1/commands/{id} agrees with the gateway.
func TestIdempotencyKeysOverHTTP(t *testing.T) {
	s := newStack(t, 4)
	ingest, _, query := s.pipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	a, b := "idem-a", ""
	for i := 0; b == ""; i++ {
		if id := fmt.Sprintf("idem-b%d", i); kafkax.KeyPartition([]byte(id), 4) != kafkax.KeyPartition([]byte(a), 4) {
			b = id
		}
	}
	c := "idem-c"
	const wait = "/v1/commands?wait=20s"
	step := func(name string, body cmd, status int, check func(map[string]any) bool) {
		t.Helper()
		code, got := post(t, ingest.addr, wait, body)
		if code != status || !check(got) {
			t.Fatalf("%s: %d %v", name, code, got)
		}
	}
	ok := func(version float64) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["status"] == "accepted" && m["version"] == version }
	}
	for _, acc := range []string{a, b, c} {
		step("open "+acc, cmd{"type": "OpenAccount", "command_id": "open-" + acc, "account_id": acc, "owner": "O", "currency": "EUR"}, 200, ok(1))
	}
	step("deposit a", cmd{"type": "DepositFunds", "command_id": "d-a1", "account_id": a, "amount": 1000}, 200, ok(2))
	step("deposit a", cmd{"type": "DepositFunds", "command_id": "d-a2", "account_id": a, "amount": 1000}, 200, ok(3))
	step("deposit b", cmd{"type": "DepositFunds", "command_id": "d-b", "account_id": b, "amount": 2000}, 200, ok(2))

	tr := func(from string, amount int, transferID string) cmd {
		return cmd{"type": "TransferFunds", "command_id": "k1", "transfer_id": transferID, "from_account_id": from, "to_account_id": c, "amount": amount}
	}
	step("k1: a→c", tr(a, 100, "t-a"), 200, ok(4))
	step("k1 again from b (another partition): its own outcome", tr(b, 250, "t-b"), 200, ok(3))
	step("k1: a→c repeated: the first outcome", tr(a, 100, "t-a"), 200, ok(4))
	step("k2: deposit", cmd{"type": "DepositFunds", "command_id": "k2", "account_id": a, "amount": 10}, 200, ok(5))
	step("k2 with another body: refused", cmd{"type": "DepositFunds", "command_id": "k2", "account_id": a, "amount": 20}, 422,
		func(m map[string]any) bool {
			return m["status"] == "rejected" && m["reason"] == "idempotency_key_reused"
		})
	step("k2 repeated: the first outcome", cmd{"type": "DepositFunds", "command_id": "k2", "account_id": a, "amount": 10}, 200, ok(5))

	l := waitTransfers(t, ctx, s, 2)
	if problems := l.Check(true); len(problems) > 0 {
		t.Fatalf("invariants: %v", problems)
	}
	for acc, want := range map[string]int64{a: 2000 - 100 + 10, b: 2000 - 250, c: 350} {
		if got := l.Accounts[acc].Balance; got != want {
			t.Errorf("%s: balance %d, want %d", acc, got, want)
		}
	}

	// The query API agrees: each account's outcome of k1, and a 409 for an
	// account k2 was never used for.
	get := func(path string) (int, map[string]any) {
		resp, err := apiGet("http://" + query.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
		return resp.StatusCode, m
	}
	for _, q := range []struct {
		path      string
		status    int
		aggregate string
		version   float64
		error     string
	}{
		{"/v1/commands/k1", 200, a, 4, ""},
		{"/v1/commands/k1?account_id=" + url.QueryEscape(a), 200, a, 4, ""},
		{"/v1/commands/k1?account_id=" + url.QueryEscape(b), 200, b, 3, ""},
		{"/v1/commands/k2?account_id=" + url.QueryEscape(b), 409, "", 0, "idempotency_key_reused"},
		{"/v1/commands/k2", 200, a, 5, ""},
	} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, m := get(q.path)
			good := code == q.status && (q.error == "" || m["error"] == q.error) &&
				(q.aggregate == "" || (m["aggregate_id"] == q.aggregate && m["version"] == q.version && m["status"] == "accepted"))
			if good {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %v", q.path, code, m)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
