package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
)

// call is one reader call as the fake store saw it.
type call struct {
	method string
	args   []any
}

// fakeStore stands in for ClickHouse: it records the exact arguments of
// every call, so tests can show that raw input arrives as typed values (and
// that refused input never arrives).
type fakeStore struct {
	mu    sync.Mutex
	calls []call
	err   error
	// history returns these rows (all of them: the fake does not page).
	rows []projection.EventRow
	next string
	// block makes TopAccounts wait for its context, like a hung server.
	block bool
}

func (f *fakeStore) record(method string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method, args})
	return f.err
}

func (f *fakeStore) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeStore) History(_ context.Context, id string, from, to time.Time, cursor string, limit int) ([]projection.EventRow, string, error) {
	if err := f.record("History", id, from, to, cursor, limit); err != nil {
		return nil, "", err
	}
	return f.rows, f.next, nil
}

func (f *fakeStore) BalanceAt(_ context.Context, id string, ts time.Time) (int64, int64, bool, error) {
	if err := f.record("BalanceAt", id, ts); err != nil {
		return 0, 0, false, err
	}
	return 0, 0, false, nil
}

func (f *fakeStore) Summary(_ context.Context, from, to time.Time) ([]projection.CurrencySummary, error) {
	return nil, f.record("Summary", from, to)
}

func (f *fakeStore) TimeSeries(_ context.Context, metric string, interval time.Duration, from, to time.Time, currency string) ([]projection.Point, error) {
	return nil, f.record("TimeSeries", metric, interval, from, to, currency)
}

func (f *fakeStore) TopAccounts(ctx context.Context, by string, limit int) ([]projection.AccountRank, error) {
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, f.record("TopAccounts", by, limit)
}

type fixture struct {
	mem   *projection.Memory
	store *fakeStore
	h     *Handler
	hist  projectiontest.History
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	hist := projectiontest.Generate(7, "", 8, 200)
	mem := projection.NewMemory()
	if err := mem.Apply(context.Background(), hist.Events); err != nil {
		t.Fatal(err)
	}
	_ = mem.ApplyOutcomes(context.Background(), []projection.Outcome{
		{CommandID: "cmd-ok", AggregateID: "acc-0", CommandType: "DepositFunds", Status: "accepted", Version: 2, ProcessedAt: projectiontest.Base},
		{CommandID: "cmd-no", AggregateID: "acc-0", CommandType: "WithdrawFunds", Status: "rejected", Reason: "insufficient_funds", Message: "no", Version: 2, ProcessedAt: projectiontest.Base},
	})
	store := &fakeStore{}
	h, err := New(Config{Accounts: mem, Transactions: mem, Transfers: mem, Outcomes: mem, History: store, Analytics: store,
		MaxWait: time.Second, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{mem: mem, store: store, h: h, hist: hist}
}

// get serves target (a raw request URI, so escapes reach the router as sent).
func (f *fixture) get(t *testing.T, target string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	req.URL, req.RequestURI = u, target
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: %d, body is not a JSON object: %q", target, rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	return rec.Code, body
}

func TestAccountMatchesFold(t *testing.T) {
	f := newFixture(t)
	for id, want := range f.hist.Accounts {
		code, body := f.get(t, "/v1/accounts/"+url.PathEscape(id))
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", id, code, body)
		}
		var got projection.AccountView
		remarshal(t, body, &got)
		if !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("%s: updated_at %s, want %s", id, got.UpdatedAt, want.UpdatedAt)
		}
		got.UpdatedAt = want.UpdatedAt
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", id, got, want)
		}
	}
}

func TestTransactionsTransfersCommands(t *testing.T) {
	f := newFixture(t)
	for id, want := range f.hist.Txs {
		code, body := f.get(t, "/v1/accounts/"+id+"/transactions?limit=3")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", id, code, body)
		}
		var got struct{ Transactions []projection.TxView }
		remarshal(t, body, &got)
		if n := min(3, len(want)); len(got.Transactions) != n || got.Transactions[0].EventID != want[0].EventID {
			t.Errorf("%s: %d transactions, first %+v; want %d, first %+v", id, len(got.Transactions), got.Transactions, n, want[0])
		}
	}
	for id, want := range f.hist.Transfers {
		code, body := f.get(t, "/v1/transfers/"+id)
		if code != http.StatusOK || body["status"] != want.Status || body["transfer_id"] != id {
			t.Errorf("transfer %s: %d %v, want status %s", id, code, body, want.Status)
		}
	}
	for _, c := range []struct{ id, status string }{{"cmd-ok", "accepted"}, {"cmd-no", "rejected"}, {"cmd-never", "unknown"}} {
		code, body := f.get(t, "/v1/commands/"+c.id)
		if code != http.StatusOK || body["status"] != c.status || body["command_id"] != c.id {
			t.Errorf("command %s: %d %v, want status %s", c.id, code, body, c.status)
		}
	}
}

func TestReadYourWrites(t *testing.T) {
	f := newFixture(t)
	acc := f.hist.Accounts["acc-0"]

	code, body := f.get(t, fmt.Sprintf("/v1/accounts/acc-0?min_version=%d", acc.Version))
	if code != http.StatusOK {
		t.Fatalf("at the version: %d %v", code, body)
	}
	code, body = f.get(t, fmt.Sprintf("/v1/accounts/acc-0?min_version=%d&wait=30ms", acc.Version+1))
	if code != http.StatusServiceUnavailable || body["error"] != CodeProjectionLagging || body["version"] != float64(acc.Version) {
		t.Fatalf("ahead of the view: %d %v", code, body)
	}
	// A wait shorter than the poll interval still reports what the view has.
	f.h.cfg.PollInterval = time.Hour
	code, body = f.get(t, fmt.Sprintf("/v1/accounts/acc-0?min_version=%d&wait=1ms", acc.Version+1))
	if code != http.StatusServiceUnavailable || body["version"] != float64(acc.Version) {
		t.Fatalf("short wait: %d %v", code, body)
	}
	f.h.cfg.PollInterval = 5 * time.Millisecond
	// Unknown account: still lagging (it may be about to appear), version 0.
	code, body = f.get(t, "/v1/accounts/acc-new?min_version=1")
	if code != http.StatusServiceUnavailable || body["version"] != float64(0) {
		t.Fatalf("unknown with min_version: %d %v", code, body)
	}

	// The account is opened while the request waits.
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(50 * time.Millisecond)
		_ = f.mem.Apply(context.Background(), projectiontest.Generate(99, "late-", 1, 1).Events)
	}()
	code, body = f.get(t, "/v1/accounts/late-acc-0?min_version=1&wait=1s")
	<-done
	if code != http.StatusOK || body["account_id"] != "late-acc-0" {
		t.Fatalf("waited for version 1: %d %v", code, body)
	}
}

func remarshal(t *testing.T, from any, to any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput: every refused request gets its documented error, names the
// parameter, and never reaches the analytics store.
func TestBadInput(t *testing.T) {
	long := strings.Repeat("a", MaxIDBytes+1)
	day := "2026-01-02T00:00:00Z"
	cases := []struct {
		name, target string
		status       int
		code, param  string
	}{
		{"unknown account", "/v1/accounts/nope", 404, CodeNotFound, ""},
		{"unknown account transactions", "/v1/accounts/nope/transactions", 404, CodeNotFound, ""},
		{"unknown account history", "/v1/accounts/nope/history", 404, CodeNotFound, ""},
		{"unknown account balance", "/v1/accounts/nope/balance-at?ts=" + day, 404, CodeNotFound, ""},
		{"unknown transfer", "/v1/transfers/nope", 404, CodeNotFound, ""},
		{"unknown endpoint", "/v1/accounts", 404, CodeNotFound, ""},
		{"id too long", "/v1/accounts/" + long, 400, CodeInvalidParameter, "id"},
		{"id NUL", "/v1/accounts/a%00b", 400, CodeInvalidParameter, "id"},
		{"id newline", "/v1/transfers/a%0Ab", 400, CodeInvalidParameter, "id"},
		{"id bad utf8", "/v1/commands/a%FFb", 400, CodeInvalidParameter, "id"},
		{"id blank", "/v1/commands/%20", 400, CodeInvalidParameter, "id"},
		{"id too long history", "/v1/accounts/" + long + "/history", 400, CodeInvalidParameter, "id"},
		{"min_version non-numeric", "/v1/accounts/acc-0?min_version=abc", 400, CodeInvalidParameter, "min_version"},
		{"min_version zero", "/v1/accounts/acc-0?min_version=0", 400, CodeInvalidParameter, "min_version"},
		{"min_version huge", "/v1/accounts/acc-0?min_version=99999999999999999999999", 400, CodeInvalidParameter, "min_version"},
		{"wait too long", "/v1/accounts/acc-0?min_version=1&wait=11s", 400, CodeInvalidParameter, "wait"},
		{"wait negative", "/v1/accounts/acc-0?min_version=1&wait=-1s", 400, CodeInvalidParameter, "wait"},
		{"wait not a duration", "/v1/accounts/acc-0?min_version=1&wait=2", 400, CodeInvalidParameter, "wait"},
		{"wait alone", "/v1/accounts/acc-0?wait=1s", 400, CodeInvalidParameter, "wait"},
		{"tx limit huge", "/v1/accounts/acc-0/transactions?limit=1000000", 400, CodeInvalidParameter, "limit"},
		{"tx limit zero", "/v1/accounts/acc-0/transactions?limit=0", 400, CodeInvalidParameter, "limit"},
		{"tx limit text", "/v1/accounts/acc-0/transactions?limit=ten", 400, CodeInvalidParameter, "limit"},
		{"tx limit twice", "/v1/accounts/acc-0/transactions?limit=1&limit=2", 400, CodeInvalidParameter, "limit"},
		{"history limit huge", "/v1/accounts/acc-0/history?limit=1001", 400, CodeInvalidParameter, "limit"},
		{"history limit injection", "/v1/accounts/acc-0/history?limit=1%20OR%201%3D1", 400, CodeInvalidParameter, "limit"},
		{"history from not RFC 3339", "/v1/accounts/acc-0/history?from=2026-01-02", 400, CodeInvalidParameter, "from"},
		{"history from injection", "/v1/accounts/acc-0/history?from=%27%20OR%201%3D1%20--", 400, CodeInvalidParameter, "from"},
		{"history inverted", "/v1/accounts/acc-0/history?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", 400, CodeInvalidParameter, "to"},
		{"history empty range", "/v1/accounts/acc-0/history?from=" + day + "&to=" + day, 400, CodeInvalidParameter, "to"},
		{"history range huge", "/v1/accounts/acc-0/history?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 400, CodeInvalidParameter, "to"},
		{"history year 9999", "/v1/accounts/acc-0/history?to=9999-01-01T00:00:00Z", 400, CodeInvalidParameter, "to"},
		{"cursor garbage", "/v1/accounts/acc-0/history?cursor=%27%20OR%201%3D1%20--", 400, CodeInvalidParameter, "cursor"},
		{"cursor raw version", "/v1/accounts/acc-0/history?cursor=5", 400, CodeInvalidParameter, "cursor"},
		{"cursor wrong tag", "/v1/accounts/acc-0/history?cursor=" + b64("x1:5"), 400, CodeInvalidParameter, "cursor"},
		{"cursor not a version", "/v1/accounts/acc-0/history?cursor=" + b64("h1:5 OR 1=1"), 400, CodeInvalidParameter, "cursor"},
		{"cursor negative", "/v1/accounts/acc-0/history?cursor=" + b64("h1:-5"), 400, CodeInvalidParameter, "cursor"},
		{"cursor too long", "/v1/accounts/acc-0/history?cursor=" + strings.Repeat("A", 100), 400, CodeInvalidParameter, "cursor"},
		{"balance ts missing", "/v1/accounts/acc-0/balance-at", 400, CodeInvalidParameter, "ts"},
		{"balance ts unix", "/v1/accounts/acc-0/balance-at?ts=1700000000", 400, CodeInvalidParameter, "ts"},
		{"summary missing from", "/v1/analytics/summary?to=" + day, 400, CodeInvalidParameter, "from"},
		{"summary missing to", "/v1/analytics/summary?from=" + day, 400, CodeInvalidParameter, "to"},
		{"summary range huge", "/v1/analytics/summary?from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 400, CodeInvalidParameter, "to"},
		{"summary inverted", "/v1/analytics/summary?from=2026-01-03T00:00:00Z&to=" + day, 400, CodeInvalidParameter, "to"},
		{"ts metric unknown", "/v1/analytics/timeseries?metric=sum(balance)&from=" + day + "&to=2026-01-03T00:00:00Z&currency=EUR", 400, CodeInvalidParameter, "metric"},
		{"ts metric missing", "/v1/analytics/timeseries?from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "metric"},
		{"ts interval minutes", "/v1/analytics/timeseries?metric=events&interval=30m&from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "interval"},
		{"ts interval fraction", "/v1/analytics/timeseries?metric=events&interval=90m&from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "interval"},
		{"ts interval huge", "/v1/analytics/timeseries?metric=events&interval=100000h&from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "interval"},
		{"ts interval text", "/v1/analytics/timeseries?metric=events&interval=hourly&from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "interval"},
		{"ts currency lower", "/v1/analytics/timeseries?metric=deposits&from=" + day + "&to=2026-01-03T00:00:00Z&currency=eur", 400, CodeInvalidParameter, "currency"},
		{"ts currency injection", "/v1/analytics/timeseries?metric=deposits&from=" + day + "&to=2026-01-03T00:00:00Z&currency=EUR%27%20OR%201%3D1%20--", 400, CodeInvalidParameter, "currency"},
		{"ts money needs currency", "/v1/analytics/timeseries?metric=deposits&from=" + day + "&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "currency"},
		{"ts range huge", "/v1/analytics/timeseries?metric=events&from=2000-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", 400, CodeInvalidParameter, "to"},
		{"top by unknown", "/v1/analytics/top-accounts?by=owner", 400, CodeInvalidParameter, "by"},
		{"top by injection", "/v1/analytics/top-accounts?by=balance%27%20--", 400, CodeInvalidParameter, "by"},
		{"top limit huge", "/v1/analytics/top-accounts?limit=101", 400, CodeInvalidParameter, "limit"},
		{"top limit negative", "/v1/analytics/top-accounts?limit=-1", 400, CodeInvalidParameter, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			code, body := f.get(t, c.target)
			if code != c.status || body["error"] != c.code {
				t.Fatalf("GET %s: %d %v; want %d %s", c.target, code, body, c.status, c.code)
			}
			if msg, _ := body["message"].(string); msg == "" {
				t.Errorf("no message: %v", body)
			}
			if c.param != "" {
				if body["parameter"] != c.param {
					t.Errorf("parameter %v, want %s (%v)", body["parameter"], c.param, body)
				}
				if msg, _ := body["message"].(string); !strings.Contains(msg, c.param) {
					t.Errorf("message %q does not name %s", msg, c.param)
				}
				if calls := f.store.Calls(); len(calls) != 0 {
					t.Errorf("a refused request reached the store: %+v", calls)
				}
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestStoreGetsBoundValues: what the client sent arrives at the store as
// typed values, ids byte for byte, whatever they contain.
func TestStoreGetsBoundValues(t *testing.T) {
	from := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(48 * time.Hour)
	inj := "acc' OR 1=1 --"
	cases := []struct {
		name, target string
		want         call
	}{
		{"history injection id", "/v1/accounts/" + url.PathEscape(inj) + "/history?limit=5",
			call{"History", []any{inj, time.Time{}, time.Time{}, "", 5}}},
		{"history range cursor", "/v1/accounts/acc-0/history?from=2026-01-02T01:00:00%2B01:00&to=2026-01-04T00:00:00Z&cursor=" + encodeCursor("17"),
			call{"History", []any{"acc-0", from, to, "17", DefaultHistoryLimit}}},
		{"balance-at unicode id", "/v1/accounts/" + url.PathEscape("конто;DROP TABLE x") + "/balance-at?ts=2026-01-02T00:00:00Z",
			call{"BalanceAt", []any{"конто;DROP TABLE x", from}}},
		{"summary", "/v1/analytics/summary?from=2026-01-02T00:00:00Z&to=2026-01-04T00:00:00Z",
			call{"Summary", []any{from, to}}},
		{"timeseries", "/v1/analytics/timeseries?metric=deposits&interval=6h&from=2026-01-02T00:00:00Z&to=2026-01-04T00:00:00Z&currency=EUR",
			call{"TimeSeries", []any{"deposits", 6 * time.Hour, from, to, "EUR"}}},
		{"timeseries defaults", "/v1/analytics/timeseries?metric=events&from=2026-01-02T00:00:00Z&to=2026-01-04T00:00:00Z",
			call{"TimeSeries", []any{"events", time.Hour, from, to, ""}}},
		{"top", "/v1/analytics/top-accounts?by=volume&limit=100", call{"TopAccounts", []any{"volume", 100}}},
		{"top defaults", "/v1/analytics/top-accounts", call{"TopAccounts", []any{"balance", DefaultTopLimit}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.get(t, c.target)
			calls := f.store.Calls()
			if len(calls) != 1 || !reflect.DeepEqual(calls[0], c.want) {
				t.Fatalf("store calls %+v\nwant [%+v]", calls, c.want)
			}
		})
	}
}

func TestHistoryCursorRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.store.rows = []projection.EventRow{{EventID: "e1", AccountID: "acc-0", Version: 1}}
	f.store.next = "1"
	code, body := f.get(t, "/v1/accounts/acc-0/history?limit=1")
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	next, _ := body["next_cursor"].(string)
	if next == "" || next == "1" {
		t.Fatalf("next_cursor %q: want an opaque cursor", next)
	}
	f.get(t, "/v1/accounts/acc-0/history?limit=1&cursor="+url.QueryEscape(next))
	calls := f.store.Calls()
	if len(calls) != 2 || calls[1].args[3] != "1" {
		t.Fatalf("second page: store calls %+v; want cursor 1", calls)
	}
}

func TestStoreErrors(t *testing.T) {
	f := newFixture(t)
	f.store.err = errors.New("connection refused")
	code, body := f.get(t, "/v1/analytics/top-accounts")
	if code != http.StatusServiceUnavailable || body["error"] != CodeUnavailable {
		t.Fatalf("store down: %d %v", code, body)
	}
	if strings.Contains(fmt.Sprint(body), "refused") {
		t.Errorf("internal error leaked to the client: %v", body)
	}
	f.store.err = fmt.Errorf("%w: limit", projection.ErrInvalidArgument)
	if code, body = f.get(t, "/v1/analytics/top-accounts"); code != http.StatusBadRequest {
		t.Fatalf("invalid argument: %d %v", code, body)
	}
}

func TestStoreTimeout(t *testing.T) {
	f := newFixture(t)
	f.store.block = true
	f.h.cfg.StoreTimeout = 20 * time.Millisecond
	start := time.Now()
	code, body := f.get(t, "/v1/analytics/top-accounts")
	if code != http.StatusServiceUnavailable || body["error"] != CodeUnavailable {
		t.Fatalf("hung store: %d %v", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %s", d)
	}
}

func TestRequestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	mem := projection.NewMemory()
	h, err := New(Config{Accounts: mem, Transactions: mem, Transfers: mem, Outcomes: mem, History: &fakeStore{}, Analytics: &fakeStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/accounts/nope", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/accounts/nope", nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "ledger_query_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got = append(got, fmt.Sprintf("%s %s %v", labels["route"], labels["code"], m.GetCounter().GetValue()))
		}
	}
	if want := []string{"GET /v1/accounts/{id} 404 2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ledger_query_requests_total: %q, want %q", got, want)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/accounts/acc-0", strings.NewReader("{}")))
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(string(b), CodeMethodNotAllowed) {
		t.Fatalf("POST: %d %s", rec.Code, b)
	}
}
