package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/audit"
)

// post sends one JSON command to the gateway with ?wait= and returns the
// status code and the decoded body.
func post(t *testing.T, addr, path string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiPost("http://"+addr+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: status %d, body not JSON: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

type cmd map[string]any

// TestHTTPEndToEnd drives every command type through the gateway and one
// processor (one `ingest serve` process) and checks the status codes,
// reasons, versions, idempotent repeats and the resulting event log.
func TestHTTPEndToEnd(t *testing.T) {
	s := newStack(t, 3)
	p := s.start("ingest", nil, "serve")
	p.waitReady(t, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const wait = "/v1/commands?wait=20s"
	steps := []struct {
		name    string
		body    cmd
		status  int
		outcome string // accepted | rejected | error code for 400s
		reason  string
		version float64
	}{
		{"open a", cmd{"type": "OpenAccount", "command_id": "c1", "account_id": "a", "owner": "Ada", "currency": "EUR"}, 200, "accepted", "", 1},
		{"open a again", cmd{"type": "OpenAccount", "command_id": "c2", "account_id": "a", "owner": "Ada", "currency": "EUR"}, 422, "rejected", "account_exists", 1},
		{"open b", cmd{"type": "OpenAccount", "command_id": "c3", "account_id": "b", "owner": "Bob", "currency": "EUR", "overdraft_limit": 500}, 200, "accepted", "", 1},
		{"open u (USD)", cmd{"type": "OpenAccount", "command_id": "c4", "account_id": "u", "owner": "Uma", "currency": "USD"}, 200, "accepted", "", 1},
		{"bad currency", cmd{"type": "OpenAccount", "command_id": "c5", "account_id": "x", "owner": "X", "currency": "eur"}, 400, "invalid_command", "", 0},
		{"deposit a", cmd{"type": "DepositFunds", "command_id": "c6", "account_id": "a", "amount": 1000}, 200, "accepted", "", 2},
		{"deposit missing", cmd{"type": "DepositFunds", "command_id": "c7", "account_id": "nobody", "amount": 1000}, 422, "rejected", "account_not_found", 0},
		{"fractional amount", cmd{"type": "DepositFunds", "command_id": "c8", "account_id": "a", "amount": 1.5}, 400, "invalid_command", "", 0},
		{"withdraw too much", cmd{"type": "WithdrawFunds", "command_id": "c9", "account_id": "a", "amount": 5000}, 422, "rejected", "insufficient_funds", 2},
		{"withdraw into overdraft", cmd{"type": "WithdrawFunds", "command_id": "c10", "account_id": "b", "amount": 400}, 200, "accepted", "", 2},
		{"withdraw a", cmd{"type": "WithdrawFunds", "command_id": "c11", "account_id": "a", "amount": 400}, 200, "accepted", "", 3},
		{"stale expected_version", cmd{"type": "DepositFunds", "command_id": "c12", "account_id": "a", "amount": 1, "expected_version": 1}, 409, "rejected", "version_conflict", 3},
		{"right expected_version", cmd{"type": "DepositFunds", "command_id": "c13", "account_id": "a", "amount": 1, "expected_version": 3}, 200, "accepted", "", 4},
		{"transfer to self", cmd{"type": "TransferFunds", "command_id": "c14", "transfer_id": "t0", "from_account_id": "a", "to_account_id": "a", "amount": 1}, 422, "rejected", "same_account", 4},
		{"transfer a→b", cmd{"type": "TransferFunds", "command_id": "c15", "transfer_id": "t1", "from_account_id": "a", "to_account_id": "b", "amount": 100}, 200, "accepted", "", 5},
		{"transfer a→u (other currency, refunded)", cmd{"type": "TransferFunds", "command_id": "c16", "transfer_id": "t2", "from_account_id": "a", "to_account_id": "u", "amount": 50}, 200, "accepted", "", 6},
		// After t2's refund (version 7 of a; see settleAfter), so this debit is 8.
		{"transfer a→missing (refunded)", cmd{"type": "TransferFunds", "command_id": "c17", "transfer_id": "t3", "from_account_id": "a", "to_account_id": "ghost", "amount": 25}, 200, "accepted", "", 8},
		{"transfer beyond funds", cmd{"type": "TransferFunds", "command_id": "c18", "transfer_id": "t4", "from_account_id": "a", "to_account_id": "b", "amount": 1_000_000}, 422, "rejected", "insufficient_funds", 0}, // version races with the refunds
		{"close a with money", cmd{"type": "CloseAccount", "command_id": "c19", "account_id": "a"}, 422, "rejected", "balance_not_zero", 0},
		{"internal command refused", cmd{"type": "CreditTransfer", "command_id": "c20", "account_id": "a"}, 400, "invalid_command", "", 0},
		{"unknown type", cmd{"type": "Bogus", "command_id": "c21", "account_id": "a"}, 400, "invalid_command", "", 0},
		// Repeats answer with the first outcome and write nothing.
		{"repeat of an accepted deposit", cmd{"type": "DepositFunds", "command_id": "c6", "account_id": "a", "amount": 1000}, 200, "accepted", "", 2},
		{"repeat of a rejection", cmd{"type": "WithdrawFunds", "command_id": "c9", "account_id": "a", "amount": 5000}, 422, "rejected", "insufficient_funds", 2},
	}
	// The saga refunds asynchronously, so a debit's version depends on
	// whether an earlier transfer's refund came first. After these commands
	// the test waits until that many transfers are settled.
	settleAfter := map[string]int{"c16": 2}
	for _, st := range steps {
		code, body := post(t, p.addr, wait, st.body)
		if code != st.status {
			t.Fatalf("%s: status %d, want %d: %v", st.name, code, st.status, body)
		}
		switch st.outcome {
		case "accepted", "rejected":
			if body["status"] != st.outcome || (st.reason != "" && body["reason"] != st.reason) {
				t.Fatalf("%s: got %v, want %s %s", st.name, body, st.outcome, st.reason)
			}
			if st.version != 0 && body["version"] != st.version {
				t.Fatalf("%s: version %v, want %v", st.name, body["version"], st.version)
			}
		default:
			if body["error"] != st.outcome {
				t.Fatalf("%s: error %v, want %s", st.name, body, st.outcome)
			}
		}
		if n := settleAfter[st.body["command_id"].(string)]; n > 0 {
			waitTransfers(t, ctx, s, n)
		}
	}

	// The transfers settle through the saga; then b can be emptied and closed.
	l := waitTransfers(t, ctx, s, 3)
	for id, want := range map[string]string{"t1": "completed", "t2": "refunded", "t3": "refunded"} {
		if got := l.Transfers[id].Status(); got != want {
			t.Fatalf("transfer %s: %s, want %s", id, got, want)
		}
	}
	if a := l.Accounts["a"]; a.Balance != 1000-400+1-100 || a.Version != 9 {
		t.Fatalf("account a: balance %d version %d", a.Balance, a.Version)
	}
	if b := l.Accounts["b"]; b.Balance != -400+100 {
		t.Fatalf("account b: balance %d", b.Balance)
	}
	for _, st := range []struct {
		body   cmd
		status int
		reason string
	}{
		{cmd{"type": "DepositFunds", "command_id": "c30", "account_id": "b", "amount": 300}, 200, ""},
		{cmd{"type": "CloseAccount", "command_id": "c31", "account_id": "b"}, 200, ""},
		{cmd{"type": "DepositFunds", "command_id": "c32", "account_id": "b", "amount": 1}, 422, "account_closed"},
	} {
		if code, body := post(t, p.addr, wait, st.body); code != st.status || (st.reason != "" && body["reason"] != st.reason) {
			t.Fatalf("%v: %d %v", st.body, code, body)
		}
	}

	// A batch: per-item outcomes, an invalid item does not stop the others.
	code, body := postRaw(t, p.addr, "/v1/commands:batch?wait=20s", "application/x-ndjson",
		`{"type":"DepositFunds","command_id":"c40","account_id":"u","amount":5}
{"type":"DepositFunds","command_id":"c41","account_id":"u","amount":-5}
{"type":"WithdrawFunds","command_id":"c42","account_id":"u","amount":1000}`)
	if code != 200 {
		t.Fatalf("batch: %d %v", code, body)
	}
	items, _ := body["results"].([]any)
	if len(items) != 3 {
		t.Fatalf("batch results: %v", body)
	}
	want := []string{"accepted", "invalid_command", "rejected"}
	for i, it := range items {
		m := it.(map[string]any)
		if got := fmt.Sprint(m["status"]); got != want[i] && fmt.Sprint(m["error"]) != want[i] {
			t.Fatalf("batch item %d: %v, want %s", i, m, want[i])
		}
	}

	l, err := audit.ReadEvents(ctx, s.kafka, s.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Check(true); len(problems) > 0 {
		t.Fatalf("invariants: %v", problems)
	}
	if n := l.Commands["c6"]; n != 1 {
		t.Fatalf("the repeated deposit c6 has %d events, want 1", n)
	}
	p.stop(t)
}

func postRaw(t *testing.T, addr, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := apiPost("http://"+addr+path, contentType, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// waitTransfers folds the events until n transfers are no longer pending.
func waitTransfers(t *testing.T, ctx context.Context, s *stack, n int) *audit.Ledger {
	t.Helper()
	for {
		l, err := audit.ReadEvents(ctx, s.kafka, s.names.Events)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, tr := range l.Transfers {
			if tr.Status() != "pending" {
				done++
			}
		}
		if done >= n {
			return l
		}
		select {
		case <-ctx.Done():
			t.Fatalf("transfers not settled: %s", l.Summary())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
