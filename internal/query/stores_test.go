package query

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestAgainstStores runs every endpoint against real Redis and ClickHouse
// views of a generated history and compares the answers with the
// generator's own fold.
func TestAgainstStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	conn, db := testenv.ClickHouseDB(t)

	hist := projectiontest.Generate(11, "", 12, 400)
	hot, err := redissink.New(rdb, redissink.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := hot.Apply(ctx, hist.Events); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := hot.ApplyOutcomes(ctx, []projection.Outcome{
		{CommandID: "c-ok", AggregateID: "acc-1", CommandType: "DepositFunds", Status: "accepted", Version: 3, ProcessedAt: now},
		{CommandID: "c-no", AggregateID: "acc-1", CommandType: "WithdrawFunds", Status: "rejected", Reason: "insufficient_funds", Message: "m", Version: 3, ProcessedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	opts := chsink.Options{Database: db}
	if err := chsink.Migrate(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	cold, err := chsink.NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := cold.Apply(ctx, hist.Events); err != nil {
		t.Fatal(err)
	}
	// Read through the generation-following reader, as cmd/queryapi does.
	reader, err := redissink.NewReader(rdb, redissink.Options{Prefix: prefix}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Accounts: reader, Transactions: reader, Transfers: reader, Outcomes: reader, History: cold, Analytics: cold})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(t *testing.T, path string, wantStatus int, out any) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("GET %s: %d %s; want %d", path, resp.StatusCode, b, wantStatus)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("GET %s: %v in %s", path, err, b)
			}
		}
	}
	ids := make([]string, 0, len(hist.Accounts))
	for id := range hist.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	t.Run("accounts", func(t *testing.T) {
		for _, id := range ids {
			want := hist.Accounts[id]
			var got projection.AccountView
			get(t, "/v1/accounts/"+id+fmt.Sprintf("?min_version=%d&wait=1s", want.Version), 200, &got)
			if !got.UpdatedAt.Equal(want.UpdatedAt) {
				t.Errorf("%s: updated_at %s, want %s", id, got.UpdatedAt, want.UpdatedAt)
			}
			got.UpdatedAt = want.UpdatedAt
			if got != want {
				t.Errorf("%s:\n got %+v\nwant %+v", id, got, want)
			}
		}
		var lag map[string]any
		get(t, fmt.Sprintf("/v1/accounts/%s?min_version=%d&wait=100ms", ids[0], hist.Accounts[ids[0]].Version+1), 503, &lag)
		if lag["error"] != CodeProjectionLagging || lag["version"] != float64(hist.Accounts[ids[0]].Version) {
			t.Errorf("lagging: %v", lag)
		}
		get(t, "/v1/accounts/"+url.PathEscape("' OR 1=1 --"), 404, nil)
	})

	t.Run("transactions", func(t *testing.T) {
		for _, id := range ids {
			want := hist.Txs[id]
			var got struct{ Transactions []projection.TxView }
			get(t, "/v1/accounts/"+id+"/transactions?limit=100", 200, &got)
			want = want[:min(len(want), 100)]
			if len(got.Transactions) != len(want) {
				t.Fatalf("%s: %d transactions, want %d", id, len(got.Transactions), len(want))
			}
			for i := range want {
				g, w := got.Transactions[i], want[i]
				if g.EventID != w.EventID || g.Amount != w.Amount || g.BalanceAfter != w.BalanceAfter || !g.OccurredAt.Equal(w.OccurredAt) {
					t.Errorf("%s[%d]: %+v, want %+v", id, i, g, w)
				}
			}
		}
	})

	t.Run("transfers and commands", func(t *testing.T) {
		for id, want := range hist.Transfers {
			var got projection.TransferView
			get(t, "/v1/transfers/"+id, 200, &got)
			if got.Status != want.Status || got.Amount != want.Amount || got.FromAccountID != want.FromAccountID {
				t.Errorf("%s: %+v, want %+v", id, got, want)
			}
		}
		get(t, "/v1/transfers/no-such", 404, nil)
		for _, c := range []struct{ id, status string }{{"c-ok", "accepted"}, {"c-no", "rejected"}, {"c-never", "unknown"}} {
			var got map[string]any
			get(t, "/v1/commands/"+c.id, 200, &got)
			if got["status"] != c.status {
				t.Errorf("%s: %v, want %s", c.id, got, c.status)
			}
		}
	})

	t.Run("history and balance-at", func(t *testing.T) {
		for _, id := range ids {
			var events []projection.EventRow
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("history does not end")
				}
				var page struct {
					Events     []projection.EventRow
					NextCursor string `json:"next_cursor"`
				}
				get(t, "/v1/accounts/"+id+"/history?limit=7&cursor="+url.QueryEscape(cursor), 200, &page)
				events = append(events, page.Events...)
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if int64(len(events)) != hist.Accounts[id].Version {
				t.Fatalf("%s: %d events, want %d", id, len(events), hist.Accounts[id].Version)
			}
			var money []projection.EventRow
			for i, e := range events {
				if e.Version != int64(i+1) {
					t.Fatalf("%s: event %d has version %d", id, i, e.Version)
				}
				if e.Type != "AccountOpened" && e.Type != "AccountClosed" {
					money = append([]projection.EventRow{e}, money...)
				}
			}
			txs := hist.Txs[id]
			if len(money) != len(txs) {
				t.Fatalf("%s: %d money events, want %d", id, len(money), len(txs))
			}
			for i, tx := range txs {
				if money[i].EventID != tx.EventID || money[i].Amount != tx.Amount || money[i].BalanceAfter != tx.BalanceAfter {
					t.Errorf("%s: history %+v, want %+v", id, money[i], tx)
				}
			}
			// A window of the history: only the events in [from, to).
			if len(events) > 2 {
				from, to := events[1].OccurredAt, events[len(events)-1].OccurredAt
				var page struct{ Events []projection.EventRow }
				get(t, "/v1/accounts/"+id+"/history?from="+from.Format(time.RFC3339)+"&to="+to.Format(time.RFC3339), 200, &page)
				if len(page.Events) != len(events)-2 || page.Events[0].Version != 2 {
					t.Errorf("%s: window has %d events from version %v, want %d from 2", id, len(page.Events), page.Events[0].Version, len(events)-2)
				}
			}
			for _, tx := range txs[:min(3, len(txs))] {
				var got struct{ Balance, Version int64 }
				get(t, "/v1/accounts/"+id+"/balance-at?ts="+tx.OccurredAt.Format(time.RFC3339Nano), 200, &got)
				if got.Balance != tx.BalanceAfter || got.Version != tx.Version {
					t.Errorf("%s at %s: %+v, want balance %d version %d", id, tx.OccurredAt, got, tx.BalanceAfter, tx.Version)
				}
			}
			get(t, "/v1/accounts/"+id+"/balance-at?ts="+projectiontest.Base.Format(time.RFC3339), 404, nil)
		}
		get(t, "/v1/accounts/no-such/history", 404, nil)
		get(t, "/v1/accounts/"+url.PathEscape("x' OR '1'='1")+"/balance-at?ts=2026-01-02T00:00:00Z", 404, nil)
	})

	// The expected analytics, folded from the generator's transactions.
	type totals struct{ deposits, withdrawals, transfers, nDep, nWd, nTr int64 }
	want := map[string]*totals{}
	volume := map[string]int64{}
	for id, txs := range hist.Txs {
		cur := hist.Accounts[id].Currency
		if want[cur] == nil {
			want[cur] = &totals{}
		}
		w := want[cur]
		for _, tx := range txs {
			volume[id] += max(tx.Amount, -tx.Amount)
			switch tx.Type {
			case "FundsDeposited":
				w.deposits += tx.Amount
				w.nDep++
			case "FundsWithdrawn":
				w.withdrawals -= tx.Amount
				w.nWd++
			case "TransferDebited":
				w.transfers -= tx.Amount
				w.nTr++
			}
		}
	}
	day := projectiontest.Base.Truncate(24 * time.Hour)
	span := "from=" + day.Format(time.RFC3339) + "&to=" + day.Add(48*time.Hour).Format(time.RFC3339)

	t.Run("summary", func(t *testing.T) {
		var got struct{ Currencies []projection.CurrencySummary }
		get(t, "/v1/analytics/summary?"+span, 200, &got)
		if len(got.Currencies) != len(want) {
			t.Fatalf("%d currencies, want %d: %+v", len(got.Currencies), len(want), got)
		}
		for _, s := range got.Currencies {
			w := want[s.Currency]
			if w == nil || s.Deposits != w.deposits || s.Withdrawals != w.withdrawals || s.Transfers != w.transfers ||
				s.DepositCount != w.nDep || s.WithdrawalCount != w.nWd || s.TransferCount != w.nTr {
				t.Errorf("%s: %+v, want %+v", s.Currency, s, w)
			}
		}
	})

	t.Run("timeseries", func(t *testing.T) {
		for cur, w := range want {
			var got struct{ Points []projection.Point }
			get(t, "/v1/analytics/timeseries?metric=deposits&interval=24h&currency="+cur+"&"+span, 200, &got)
			var sum int64
			for _, p := range got.Points {
				sum += p.Value
				if !p.Time.Equal(day) {
					t.Errorf("%s: bucket %s, want %s (one day)", cur, p.Time, day)
				}
			}
			if sum != w.deposits {
				t.Errorf("%s: deposits %d, want %d", cur, sum, w.deposits)
			}
		}
	})

	t.Run("top-accounts", func(t *testing.T) {
		type rank struct {
			id    string
			value int64
		}
		check := func(by string, all []rank) {
			sort.Slice(all, func(i, j int) bool {
				if all[i].value != all[j].value {
					return all[i].value > all[j].value
				}
				return all[i].id < all[j].id
			})
			var got struct{ Accounts []projection.AccountRank }
			get(t, "/v1/analytics/top-accounts?by="+by+"&limit=5", 200, &got)
			if len(got.Accounts) != min(5, len(all)) {
				t.Fatalf("by %s: %d accounts, want %d", by, len(got.Accounts), min(5, len(all)))
			}
			for i, g := range got.Accounts {
				if g.AccountID != all[i].id || g.Value != all[i].value {
					t.Errorf("by %s #%d: %+v, want %+v", by, i, g, all[i])
				}
			}
		}
		var byBalance, byVolume []rank
		for _, id := range ids {
			if a := hist.Accounts[id]; a.Status == projection.StatusOpen {
				byBalance = append(byBalance, rank{id, a.Balance})
			}
			if volume[id] > 0 {
				byVolume = append(byVolume, rank{id, volume[id]})
			}
		}
		check("balance", byBalance)
		check("volume", byVolume)
	})

	// Last, as it switches the views: after `projector rebuild` moves the
	// Redis pointer to a new generation, point lookups follow it.
	t.Run("redis generation switch", func(t *testing.T) {
		next := projectiontest.Generate(12, "", 12, 100)
		gen, err := redissink.New(rdb, redissink.Options{Prefix: redissink.GenerationPrefix(prefix, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if err := gen.Apply(ctx, next.Events); err != nil {
			t.Fatal(err)
		}
		if err := redissink.SetGeneration(ctx, rdb, prefix, 1); err != nil {
			t.Fatal(err)
		}
		want := next.Accounts["acc-0"]
		if old := hist.Accounts["acc-0"]; old.Version == want.Version && old.Balance == want.Balance {
			t.Fatal("the new generation must differ from the old for this test to mean anything")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got projection.AccountView
			get(t, "/v1/accounts/acc-0", 200, &got)
			if got.Version == want.Version && got.Balance == want.Balance {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %+v 5 s after the switch; want %+v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		var body map[string]any
		get(t, "/v1/accounts/"+ids[0]+"/history?cursor=%27%20OR%201%3D1%20--", http.StatusBadRequest, &body)
		if body["parameter"] != "cursor" {
			t.Errorf("%v", body)
		}
	})
}
