package e2e

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestPipelineOverHTTP runs the whole pipeline as separate processes
// (ingest, projector, queryapi) and drives a seeded workload of several
// thousand commands over hundreds of accounts through the gateway. Then,
// through the query API only: every account's balance and version equal an
// independent model computed from the command outcomes, money is conserved
// per currency, every transfer is terminal, and the analytics summary equals
// the model's totals per currency.
func TestPipelineOverHTTP(t *testing.T) {
	s := newStack(t, 4)
	ingest, projector, query := s.pipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	cl := loadgen.NewClient("http://"+ingest.addr, "http://"+query.addr, apiTokens, 48)
	rep, err := loadgen.Run(ctx, cl, loadgen.Options{
		Workload:    workload.Options{Seed: 2026, Accounts: 250, Commands: 3000, IDPrefix: "p-", Currencies: []string{"EUR", "USD", "JPY"}},
		Concurrency: 48,
		Wait:        20 * time.Second,
		Visible:     10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors > 0 || rep.Pending > 0 || rep.Invisible > 0 {
		t.Fatalf("%d errors, %d pending, %d not visible of %d sent", rep.Errors, rep.Pending, rep.Invisible, rep.Sent)
	}
	if err := rep.Model.Settle(ctx, cl, time.Minute); err != nil {
		t.Fatal(err)
	}
	m := rep.Model

	// Every account, through the query API, at the version the model expects.
	sums := map[string]int64{}
	for id, want := range m.Accounts {
		var got struct {
			Balance  int64  `json:"balance"`
			Version  int64  `json:"version"`
			Currency string `json:"currency"`
			Status   string `json:"status"`
		}
		code, err := cl.Get(ctx, "/v1/accounts/"+url.PathEscape(id), url.Values{"min_version": {fmt.Sprint(want.Version)}, "wait": {"10s"}}, &got)
		if err != nil || code != 200 {
			t.Fatalf("account %s: HTTP %d, %v", id, code, err)
		}
		if got.Balance != want.Balance || got.Version != want.Version || got.Currency != want.Currency || (got.Status == "closed") != want.Closed {
			t.Fatalf("account %s: query API %+v, model %+v", id, got, *want)
		}
		sums[got.Currency] += got.Balance
	}
	for cur, tot := range m.Totals {
		if sums[cur] != tot.Deposits-tot.Withdrawals {
			t.Fatalf("%s: balances %d ≠ deposits %d − withdrawals %d", cur, sums[cur], tot.Deposits, tot.Withdrawals)
		}
	}
	terminal := 0
	for id, tr := range m.Transfers {
		var got struct {
			Status string `json:"status"`
		}
		if code, err := cl.Get(ctx, "/v1/transfers/"+url.PathEscape(id), nil, &got); err != nil || code != 200 || got.Status != tr.Status {
			t.Fatalf("transfer %s: HTTP %d %v %q, model %q", id, code, err, got.Status, tr.Status)
		}
		terminal++
	}

	// The analytics summary (ClickHouse) equals the model's totals. The
	// ClickHouse projector may trail Redis a little: poll until it agrees.
	var summary struct {
		Currencies []struct {
			Currency          string `json:"currency"`
			Deposits          int64  `json:"deposits"`
			Withdrawals       int64  `json:"withdrawals"`
			Transfers         int64  `json:"transfers"`
			TransfersCredited int64  `json:"transfers_credited"`
			TransfersRefunded int64  `json:"transfers_refunded"`
			DepositCount      int64  `json:"deposit_count"`
			WithdrawalCount   int64  `json:"withdrawal_count"`
			TransferCount     int64  `json:"transfer_count"`
		} `json:"currencies"`
	}
	from := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
	to := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	var mismatch string
	for deadline := time.Now().Add(60 * time.Second); ; {
		if code, err := cl.Get(ctx, "/v1/analytics/summary", url.Values{"from": {from}, "to": {to}}, &summary); err != nil || code != 200 {
			t.Fatalf("summary: HTTP %d %v", code, err)
		}
		mismatch = ""
		seen := map[string]bool{}
		for _, c := range summary.Currencies {
			seen[c.Currency] = true
			want := m.Totals[c.Currency]
			if want == nil {
				mismatch = "unexpected currency " + c.Currency
				break
			}
			if c.Deposits != want.Deposits || c.Withdrawals != want.Withdrawals || c.Transfers != want.TransfersOut ||
				c.TransfersCredited != want.Credited || c.TransfersRefunded != want.Refunded ||
				c.DepositCount != int64(want.DepositCount) || c.WithdrawalCount != int64(want.WithdrawalCount) || c.TransferCount != int64(want.TransferCount) {
				mismatch = fmt.Sprintf("%s: summary %+v, model %+v", c.Currency, c, *want)
				break
			}
		}
		for cur, tot := range m.Totals {
			if !seen[cur] && (tot.Deposits != 0 || tot.Withdrawals != 0 || tot.TransfersOut != 0) && mismatch == "" {
				mismatch = "summary lacks " + cur
			}
		}
		if mismatch == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if mismatch != "" {
		t.Fatal(mismatch)
	}
	t.Logf("%d commands (%d accepted, %d rejected) in %s, %d accounts and %d transfers checked through the query API",
		rep.Sent, rep.Accepted, rep.Rejected, rep.Elapsed.Round(time.Millisecond), len(m.Accounts), terminal)
	for _, p := range []*proc{query, projector, ingest} {
		p.stop(t)
	}
}
