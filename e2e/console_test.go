package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// screenshotsEnv names the directory (relative to the repository root
// unless absolute) where TestConsole writes its screenshots: the console's
// views and the analytics dashboard's panels rendered from their SQL.
// Unset, the screenshots are taken and checked but not written.
const screenshotsEnv = "LEDGER_UI_SCREENSHOTS"

// TestConsole drives the query API's console (/ui/) in headless Chromium
// against the binaries on the real stack after a seeded workload spread over
// 18 hours: it enters a token, looks up an account and pages through its
// history, looks up command outcomes and transfers, opens the charts, and
// checks every number the page shows against the query API's JSON. Then it
// renders the analytics dashboard's panels from their SQL on the same
// ClickHouse data. With LEDGER_UI_SCREENSHOTS it writes PNGs of both.
func TestConsole(t *testing.T) {
	chrome := testenv.Chromium(t)
	s := newStack(t, 2)
	conn, db := testenv.ClickHouseDB(t)
	_, redisPrefix := testenv.RedisClient(t)
	env := []string{
		"REDIS_ADDR=" + testenv.Redis(t), "REDIS_KEY_PREFIX=" + redisPrefix,
		"CLICKHOUSE_ADDR=" + testenv.ClickHouse(t), "CLICKHOUSE_DATABASE=" + db,
	}
	procs := []*proc{s.start("ingest", env, "serve"), s.start("projector", env), s.start("queryapi", env)}
	for _, p := range procs {
		p.waitReady(t, 90*time.Second)
	}
	queryAddr := procs[2].addr
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cmds, first := consoleWorkload(time.Now())
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}
	l := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	results, err := s.results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := &queryAPI{t: t, base: "http://" + queryAddr}
	from, to := first.Truncate(time.Hour), time.Now().UTC().Truncate(time.Hour).Add(2*time.Hour)
	a.waitProjected(ctx, l, from, to)
	t.Logf("workload: %s", l.Summary())

	b := newBrowser(t, ctx, chrome)
	b.consoleAuth(a.base)
	b.consoleAccount(a, busiest(l))
	b.consoleCommands(a, pickCommands(t, results))
	b.consoleTransfers(a, pickTransfers(t, l))
	b.consoleAnalytics(a)
	b.consoleForget()
	b.grafanaPanels(a, conn, db, from, to)
	b.checkConsole()
}

// consoleWorkload is the seeded workload: 12 accounts in EUR and USD, then
// deposits (three large ones), withdrawals (some rejected), transfers (some
// refunded) and a few closes, their issued_at spread evenly over the 18 hours before now so
// the charts have hours to show. It returns the commands and the first
// issued_at.
func consoleWorkload(now time.Time) ([]workload.Command, time.Time) {
	cmds := workload.Generate(workload.Options{Seed: 165, Accounts: 12, Commands: 288, Currencies: []string{"EUR", "USD"},
		TransferRate: 0.35, BadTargetRate: 0.1, IDPrefix: "ui-"})
	// A few large deposits (to EUR accounts: the even ones), so that the
	// balance distribution has more than one bar.
	for i, amount := range []int64{15_000_000, 3_000_000, 2_000_000} {
		id, acc := fmt.Sprintf("ui-big-%d", i), fmt.Sprintf("ui-acc-%d", 2*i)
		cmds = slices.Insert(cmds, len(cmds)*(i+1)/4, workload.Command{Key: acc, ID: id, Value: &codec.DepositFunds{
			CommandID: id, AggregateID: acc, CorrelationID: id, Amount: amount, Reference: "bonus"}})
	}
	// An owner that is markup: the page must show it as text. (USD: the
	// panel renders, all EUR but one, stay readable.)
	cmds = slices.Insert(cmds, 0, workload.Command{Key: markupAccount, ID: "ui-open-markup", Value: &codec.OpenAccount{
		CommandID: "ui-open-markup", AggregateID: markupAccount, CorrelationID: "ui-open-markup", Owner: markupOwner, Currency: "USD"}})
	start := now.UTC().Add(-18 * time.Hour).Truncate(time.Millisecond)
	step := 18 * time.Hour / time.Duration(len(cmds))
	for i, c := range cmds {
		if c.Duplicate {
			continue // the same value as the first sending: keeps its time
		}
		reflect.ValueOf(c.Value).Elem().FieldByName("IssuedAt").Set(reflect.ValueOf(start.Add(time.Duration(i) * step)))
	}
	return cmds, start
}

// markupAccount is opened with an owner that would run script if the page
// wrote it as markup.
const (
	markupAccount = "ui-markup"
	markupOwner   = `<img src=x onerror="window.pwned=1">Ada & <b>Bob</b>`
)

// busiest is the account with the most events (the longest history).
func busiest(l *audit.Ledger) string {
	best := ""
	for id, acc := range l.Accounts {
		if best == "" || acc.Version > l.Accounts[best].Version || (acc.Version == l.Accounts[best].Version && id < best) {
			best = id
		}
	}
	return best
}

// pickCommands returns an accepted transfer, a rejected withdrawal and an
// id nobody sent.
func pickCommands(t *testing.T, results map[string]*codec.CommandResult) []string {
	t.Helper()
	var accepted, rejected string
	ids := make([]string, 0, len(results))
	for id := range results {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := results[id]
		switch {
		case accepted == "" && strings.EqualFold(r.Status, "accepted") && strings.HasSuffix(r.CommandType, "TransferFunds"):
			accepted = id
		case rejected == "" && strings.EqualFold(r.Status, "rejected") && r.Reason == "insufficient_funds":
			rejected = id
		}
	}
	if accepted == "" || rejected == "" {
		t.Fatalf("the workload has no accepted transfer (%q) or no rejected withdrawal (%q)", accepted, rejected)
	}
	return []string{accepted, rejected, "ui-never-sent"}
}

// pickTransfers returns a completed and a refunded transfer.
func pickTransfers(t *testing.T, l *audit.Ledger) []string {
	t.Helper()
	var done, refunded string
	ids := make([]string, 0, len(l.Transfers))
	for id := range l.Transfers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		switch st := l.Transfers[id].Status(); {
		case done == "" && st == "completed":
			done = id
		case refunded == "" && st == "refunded":
			refunded = id
		}
	}
	if done == "" || refunded == "" {
		t.Fatalf("the workload has no completed (%q) or no refunded (%q) transfer", done, refunded)
	}
	return []string{done, refunded}
}

// ---- the query API, read the way the page reads it ----------------------

type queryAPI struct {
	t    *testing.T
	base string
}

// get decodes GET path (with the read token) into out and returns the status.
func (a *queryAPI) get(path string, out any) int {
	a.t.Helper()
	resp, err := apiGet(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("GET %s: %d %v in %s", path, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode
}

func (a *queryAPI) mustGet(path string, out any) {
	a.t.Helper()
	if code := a.get(path, out); code != http.StatusOK {
		a.t.Fatalf("GET %s: %d", path, code)
	}
}

// waitProjected waits until Redis has every account at its final version
// and ClickHouse every event (the summary counts them all).
func (a *queryAPI) waitProjected(ctx context.Context, l *audit.Ledger, from, to time.Time) {
	a.t.Helper()
	for id, acc := range l.Accounts {
		for a.get(fmt.Sprintf("/v1/accounts/%s?min_version=%d&wait=10s", url.PathEscape(id), acc.Version), nil) != http.StatusOK {
			if ctx.Err() != nil {
				a.t.Fatalf("account %s never reached version %d in the query API", id, acc.Version)
			}
		}
	}
	for {
		var sum struct{ Currencies []projection.CurrencySummary }
		a.mustGet("/v1/analytics/summary?"+period(from, to), &sum)
		n := int64(0)
		for _, c := range sum.Currencies {
			n += c.Events
		}
		if n == int64(l.Events) {
			return
		}
		select {
		case <-ctx.Done():
			a.t.Fatalf("ClickHouse holds %d of %d events", n, l.Events)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func period(from, to time.Time) string {
	return "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
}

// ---- what the page shows, formatted the page's way ---------------------

// money is the page's format of minor units: "1,234.56 EUR" (every
// currency of the workload has two decimals).
func money(minor int64, cur string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%s.%02d %s", sign, grouped(minor/100), minor%100, cur)
}

// grouped is n with thousands separated by commas.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func when(ts time.Time) string { return strings.Replace(ts.Format(time.RFC3339Nano), "T", " ", 1) }

// ---- the browser ----------------------------------------------------------

type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go; "" keeps none

	mu       sync.Mutex
	problems []string // exceptions, CSP violations, console errors of the page
	written  []string
}

// newBrowser starts Chromium with the flags this machine's sandboxing and CI
// need, a fresh profile, and a 1000×640 viewport.
func newBrowser(t *testing.T, ctx context.Context, chrome string) *browser {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 640),
	)
	bctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Start the browser on a context without a deadline (a deadline on the
	// first Run would end the browser with it); each step gets its own.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1000, 640)); err != nil {
		t.Fatalf("start Chromium (%s): %v", chrome, err)
	}
	b := &browser{t: t, ctx: bctx}
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b.shots = dir
	}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// A refused request (401, 404, …) is logged by the browser as a
			// network error: the test provokes those on purpose. Anything
			// else at error level is the page's fault.
			if m.IsException() || m.Source == "security" || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps with a deadline.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// act runs steps that start one user action of the page (a lookup, a page
// of history, a chart) and waits until the page has finished it.
func (b *browser) act(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	before := eval[string](b, `document.body.dataset.actions`)
	b.do(steps...)
	b.do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.body.dataset.actions !== %q && document.body.dataset.busy === "0"`, before),
		chromedp.WithPollingTimeout(30*time.Second)))
}

// text is the text of the first element matching the CSS selector, "" if
// none does.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.trim()`, sel))
}

func (b *browser) shown(sel string) bool {
	b.t.Helper()
	return eval[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && !e.hidden && e.offsetParent !== null; })()`, sel))
}

// rows are the cells' text of the table's body rows.
func (b *browser) rows(table string) [][]string {
	b.t.Helper()
	return eval[[][]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map((tr) => Array.from(tr.cells).map((td) => td.textContent))`, table+" tbody tr"))
}

// lookup types id into the input and submits its form.
func (b *browser) lookup(input, id string) {
	b.t.Helper()
	// (chromedp's SetValue refuses "": it reads the value back and
	// mistakes "" for a failure.)
	b.act(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, input)), chromedp.SendKeys(chromedp.CSS(input), id),
		chromedp.Click(chromedp.CSS(input+" ~ button[type=submit]")))
}

// shot takes a screenshot of the page from its top, 1000×640 or, when
// full, as tall as the page, and writes it as name.png when screenshots are
// asked for.
func (b *browser) shot(name string, full bool) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	if full {
		h := eval[int64](b, `document.body.scrollHeight`)
		b.do(chromedp.EmulateViewport(1000, h))
		defer b.do(chromedp.EmulateViewport(1000, 640))
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil || img.Bounds().Dx() != 1000 {
		b.t.Fatalf("screenshot %s: not a 1000 px wide PNG (%v)", name, err)
	}
	if b.shots == "" {
		return
	}
	f := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(f, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.written = append(b.written, f)
}

func (b *browser) eq(what, got, want string) {
	b.t.Helper()
	if got != want {
		b.t.Errorf("%s: the page shows %q, the API says %q", what, got, want)
	}
}

// checkConsole fails for anything the page logged as an error.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("page error: %s", p)
	}
	if len(b.written) > 0 {
		b.t.Logf("screenshots: %s", strings.Join(b.written, " "))
	}
}

// ---- the console's views ----------------------------------------------------

// consoleAuth: without a token, or with a wrong one, the page shows the
// API's refusal and no data; with the read token, it reads.
func (b *browser) consoleAuth(base string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base + "/ui/"))
	b.do(chromedp.WaitVisible(chromedp.CSS("#account-form")))
	for _, token := range []string{"", newToken()} {
		if token != "" {
			b.do(chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
		}
		b.lookup("#account-id", "ui-acc-0")
		if !b.shown("#account-error") || !strings.Contains(b.text("#account-error"), "401") || b.shown("#account-result") {
			b.t.Fatalf("token %q: want the 401 shown and no account, the page shows %q", token, b.text("#account-error"))
		}
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), apiTokens.Read), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	if v := eval[string](b, `document.getElementById("token").value + localStorage.length + location.href`); strings.Contains(v, apiTokens.Read) || !strings.HasSuffix(b.text("#token-state"), "tab") {
		b.t.Errorf("the token stays in the field, localStorage or the URL: %q", v)
	}
}

// consoleAccount looks up id, checks the card, the recent transactions and
// every page of the history against the API, and the errors for an unknown
// and a malformed id.
func (b *browser) consoleAccount(a *queryAPI, id string) {
	b.t.Helper()
	const pageSize = 5
	b.do(chromedp.SetValue(chromedp.CSS("#history-size"), strconv.Itoa(pageSize)))
	b.lookup("#account-id", id)
	if b.shown("#account-error") {
		b.t.Fatalf("account %s: %s", id, b.text("#account-error"))
	}
	var acc projection.AccountView
	a.mustGet("/v1/accounts/"+url.PathEscape(id), &acc)
	cur := acc.Currency
	b.eq("account id", b.text("#acct-id"), acc.AccountID)
	b.eq("owner", b.text("#acct-owner"), acc.Owner)
	b.eq("balance", b.text("#acct-balance"), money(acc.Balance, cur))
	b.eq("overdraft limit", b.text("#acct-overdraft"), money(acc.OverdraftLimit, cur))
	b.eq("status", b.text("#acct-status"), acc.Status)
	b.eq("version", b.text("#acct-version"), grouped(acc.Version))
	b.eq("updated", b.text("#acct-updated"), when(acc.UpdatedAt))

	var recent struct{ Transactions []projection.TxView }
	a.mustGet("/v1/accounts/"+url.PathEscape(id)+"/transactions?limit=10", &recent)
	var want [][]string
	for _, tx := range recent.Transactions {
		want = append(want, []string{grouped(tx.Version), tx.Type, money(tx.Amount, cur), money(tx.BalanceAfter, cur), tx.Counterparty})
	}
	if got := b.rows("#recent"); !slices.EqualFunc(got, want, slices.Equal) || len(want) == 0 {
		b.t.Errorf("recent transactions:\n page %q\n  API %q", got, want)
	}

	// Every page of the history, in the page and through the API.
	cursor, pages := "", 0
	var all []projection.EventRow
	for {
		var h struct {
			Events     []projection.EventRow
			NextCursor string `json:"next_cursor"`
		}
		path := fmt.Sprintf("/v1/accounts/%s/history?limit=%d", url.PathEscape(id), pageSize)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		a.mustGet(path, &h)
		pages++
		want = nil
		for _, e := range h.Events {
			c := e.Currency
			if c == "" {
				c = cur
			}
			want = append(want, []string{grouped(e.Version), e.Type, money(e.Amount, c), money(e.BalanceAfter, c), when(e.OccurredAt)})
		}
		all = append(all, h.Events...)
		if got := b.rows("#history"); !slices.EqualFunc(got, want, slices.Equal) {
			b.t.Fatalf("history page %d:\n page %q\n  API %q", pages, got, want)
		}
		label := fmt.Sprintf("page %d", pages)
		if h.NextCursor == "" {
			label += " (last)"
		}
		b.eq("history page label", b.text("#history-page"), label)
		if pages == 2 {
			b.shot("console-account", true)
		}
		if h.NextCursor == "" {
			if !eval[bool](b, `document.getElementById("history-next").disabled`) {
				b.t.Error("the last history page leaves Next enabled")
			}
			break
		}
		cursor = h.NextCursor
		b.act(chromedp.Click(chromedp.CSS("#history-next")))
	}
	if int64(len(all)) != acc.Version || pages < 3 {
		b.t.Errorf("history: %d events in %d pages, want the account's %d events in several pages", len(all), pages, acc.Version)
	}
	for i, e := range all {
		if e.Version != int64(i+1) {
			b.t.Fatalf("history: event %d has version %d: pages overlap or skip", i, e.Version)
		}
	}
	b.act(chromedp.Click(chromedp.CSS("#history-first")))
	b.eq("history after First page", b.text("#history-page"), "page 1")

	// Errors: the API's message, and nothing of the previous account left.
	var notFound, bad struct{ Message string }
	if a.get("/v1/accounts/ui-no-such-account", &notFound) != http.StatusNotFound {
		b.t.Fatal("an unknown account is not 404")
	}
	b.lookup("#account-id", "ui-no-such-account")
	b.eq("unknown account", b.text("#account-error"), notFound.Message)
	if b.shown("#account-result") {
		b.t.Error("the previous account stays shown after an unknown one")
	}
	// An id with characters that mean something in a URL reaches the API
	// as one path segment and gets its answer.
	odd := "ui/../x?y#z %"
	var oddAnswer struct{ Message string }
	if code := a.get("/v1/accounts/"+url.PathEscape(odd), &oddAnswer); code != http.StatusNotFound || !strings.Contains(oddAnswer.Message, strconv.Quote(odd)) {
		b.t.Fatalf("id %q: %d %q, want the 404 of that account", odd, code, oddAnswer.Message)
	}
	b.lookup("#account-id", odd)
	b.eq("id with URL characters", b.text("#account-error"), oddAnswer.Message)
	// Markup from the API is shown as text, never run.
	b.lookup("#account-id", markupAccount)
	b.eq("owner with markup", b.text("#acct-owner"), markupOwner)
	if eval[bool](b, `window.pwned !== undefined || document.querySelector("#account-card img, #account-card b") !== null`) {
		b.t.Error("the page turned an owner into markup")
	}
	long := strings.Repeat("x", 129)
	if a.get("/v1/accounts/"+long, &bad) != http.StatusBadRequest {
		b.t.Fatal("an over-long id is not 400")
	}
	b.lookup("#account-id", long)
	b.eq("over-long id", b.text("#account-error"), bad.Message)
	b.shot("console-account-error", true)
}

// consoleCommands looks up each command id and checks the outcome against
// the API.
func (b *browser) consoleCommands(a *queryAPI, ids []string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(`nav a[data-view=command]`)))
	for i, id := range ids {
		var o projection.Outcome
		a.mustGet("/v1/commands/"+url.PathEscape(id), &o)
		b.lookup("#command-id", id)
		if b.shown("#command-error") {
			b.t.Fatalf("command %s: %s", id, b.text("#command-error"))
		}
		b.eq(id+" id", b.text("#cmd-id"), o.CommandID)
		b.eq(id+" status", b.text("#cmd-status"), o.Status)
		b.eq(id+" type", b.text("#cmd-type"), o.CommandType)
		b.eq(id+" account", b.text("#cmd-account"), o.AggregateID)
		b.eq(id+" reason", b.text("#cmd-reason"), o.Reason)
		if o.Status == "unknown" {
			if !strings.Contains(b.text("#cmd-message"), "No outcome is known") {
				b.t.Errorf("%s: unknown, but the page says %q", id, b.text("#cmd-message"))
			}
			continue
		}
		b.eq(id+" version", b.text("#cmd-version"), grouped(o.Version))
		b.eq(id+" message", b.text("#cmd-message"), o.Message)
		b.eq(id+" processed", b.text("#cmd-processed"), when(o.ProcessedAt))
		if i == 1 {
			b.shot("console-command", true)
		}
	}
}

// consoleTransfers looks up each transfer and an unknown one.
func (b *browser) consoleTransfers(a *queryAPI, ids []string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(`nav a[data-view=transfer]`)))
	for _, id := range ids {
		var tr projection.TransferView
		a.mustGet("/v1/transfers/"+url.PathEscape(id), &tr)
		b.lookup("#transfer-id", id)
		b.eq(id+" id", b.text("#tr-id"), tr.TransferID)
		b.eq(id+" status", b.text("#tr-status"), tr.Status)
		b.eq(id+" from", b.text("#tr-from"), tr.FromAccountID)
		b.eq(id+" to", b.text("#tr-to"), tr.ToAccountID)
		b.eq(id+" amount", b.text("#tr-amount"), money(tr.Amount, tr.Currency))
		b.eq(id+" updated", b.text("#tr-updated"), when(tr.UpdatedAt))
	}
	b.shot("console-transfer", true)
	var notFound struct{ Message string }
	if a.get("/v1/transfers/ui-no-such-transfer", &notFound) != http.StatusNotFound {
		b.t.Fatal("an unknown transfer is not 404")
	}
	b.lookup("#transfer-id", "ui-no-such-transfer")
	b.eq("unknown transfer", b.text("#transfer-error"), notFound.Message)
}

var periodText = regexp.MustCompile(`^(\S+) (\S+) to (\S+) (\S+)$`)

// consoleAnalytics opens the analytics view and checks the summary table
// and the charts' totals, for each currency, against the API over the
// period the page shows.
func (b *browser) consoleAnalytics(a *queryAPI) {
	b.t.Helper()
	b.act(chromedp.Click(chromedp.CSS(`nav a[data-view=analytics]`)))
	if b.shown("#analytics-error") {
		b.t.Fatalf("analytics: %s", b.text("#analytics-error"))
	}
	m := periodText.FindStringSubmatch(b.text("#an-period"))
	if m == nil {
		b.t.Fatalf("period %q", b.text("#an-period"))
	}
	from, err1 := time.Parse(time.RFC3339, m[1]+"T"+m[2])
	to, err2 := time.Parse(time.RFC3339, m[3]+"T"+m[4])
	if err1 != nil || err2 != nil || to.Sub(from) != 24*time.Hour {
		b.t.Fatalf("period %q: %v %v", b.text("#an-period"), err1, err2)
	}
	var sum struct{ Currencies []projection.CurrencySummary }
	a.mustGet("/v1/analytics/summary?"+period(from, to), &sum)
	var want [][]string
	var currencies []string
	for _, c := range sum.Currencies {
		cell := func(amount, n int64) string { return money(amount, c.Currency) + " (" + grouped(n) + ")" }
		want = append(want, []string{c.Currency, cell(c.Deposits, c.DepositCount), cell(c.Withdrawals, c.WithdrawalCount),
			cell(c.Transfers, c.TransferCount), cell(c.TransfersCredited, c.CreditedCount), cell(c.TransfersRefunded, c.RefundedCount), grouped(c.Events)})
		currencies = append(currencies, c.Currency)
	}
	if got := b.rows("#summary"); !slices.EqualFunc(got, want, slices.Equal) || !slices.Equal(currencies, []string{"EUR", "USD"}) {
		b.t.Errorf("summary:\n page %q\n  API %q", got, want)
	}
	for i, cur := range currencies {
		if i > 0 {
			b.do(chromedp.SetValue(chromedp.CSS("#an-currency"), cur))
			b.act(chromedp.Click(chromedp.CSS("#analytics-form button[type=submit]")))
		}
		b.eq("currency shown", eval[string](b, `document.getElementById("an-currency").value`), cur)
		vol := a.series(cur, from, to, "deposits", "withdrawals", "transfers")
		cnt := a.series(cur, from, to, "deposit_count", "withdrawal_count", "transfer_count")
		if vol.buckets < 10 {
			b.t.Errorf("%s: %d hourly buckets; the workload spans 18 hours", cur, vol.buckets)
		}
		b.eq(cur+" volume chart", b.text("#chart-volume-caption"), fmt.Sprintf("Totals: deposits %s, withdrawals %s, transfers sent %s in %d buckets",
			money(vol.totals[0], cur), money(vol.totals[1], cur), money(vol.totals[2], cur), vol.buckets))
		b.eq(cur+" count chart", b.text("#chart-counts-caption"), fmt.Sprintf("Totals: deposits %s, withdrawals %s, transfers sent %s in %d buckets",
			grouped(cnt.totals[0]), grouped(cnt.totals[1]), grouped(cnt.totals[2]), cnt.buckets))
		if n := eval[int](b, `document.querySelectorAll("#chart-volume canvas, #chart-counts canvas").length`); n != 2 {
			b.t.Errorf("%s: %d chart canvases, want 2", cur, n)
		}
		if i == 0 {
			b.shot("console-analytics", false)
		}
	}
}

// consoleForget: Forget drops the token and reloads, so nothing read with
// it stays on screen, and the view now shows the API's refusal.
func (b *browser) consoleForget() {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS("#token-forget")))
	// The page reloads: wait for the new page to finish its first action
	// (the analytics view reads on load), tolerating the gap in between.
	reloaded := false
	for deadline := time.Now().Add(20 * time.Second); !reloaded && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		reloaded, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && document.body.dataset.actions === "1" && document.body.dataset.busy === "0"`))
		cancel()
	}
	if !reloaded {
		b.t.Fatal("Forget did not reload the page")
	}
	if eval[bool](b, `sessionStorage.length !== 0`) || b.shown("#analytics-result") || !strings.Contains(b.text("#analytics-error"), "401") {
		b.t.Errorf("after Forget: token kept, data shown or no refusal (%q)", b.text("#analytics-error"))
	}
}

// seriesTotals are the totals of metrics and the number of distinct buckets.
type seriesTotals struct {
	totals  []int64
	buckets int
}

func (a *queryAPI) series(cur string, from, to time.Time, metrics ...string) seriesTotals {
	a.t.Helper()
	out := seriesTotals{totals: make([]int64, len(metrics))}
	times := map[time.Time]bool{}
	for i, m := range metrics {
		var ts struct{ Points []projection.Point }
		a.mustGet(fmt.Sprintf("/v1/analytics/timeseries?metric=%s&interval=1h&%s&currency=%s", m, period(from, to), cur), &ts)
		for _, p := range ts.Points {
			out.totals[i] += p.Value
			times[p.Time] = true
		}
	}
	out.buckets = len(times)
	return out
}
