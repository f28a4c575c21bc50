// Command ledgerload drives a running ledger over its HTTP APIs: `demo` runs
// a realistic workload and prints a report read back through the query API;
// `run` offers commands at a target rate (or as fast as possible) and
// measures throughput and command→visible latency (p50/p95/p99).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ledgerload:", err)
		}
		os.Exit(1)
	}
}

type common struct {
	ingest, query      string
	token              string // both APIs
	writeToken         string // the gateway
	readToken          string // the query API
	tokensFile         string
	concurrency        int
	accounts, commands int
	seed               uint64
	wait, visible      time.Duration
	prefix             string
}

func (c *common) register(fs *flag.FlagSet, accounts, commands int) {
	fs.StringVar(&c.ingest, "ingest-url", "http://127.0.0.1:8080", "ingest gateway base URL (INGEST_URL)")
	fs.StringVar(&c.query, "query-url", "http://127.0.0.1:8082", "query API base URL (QUERY_URL)")
	fs.StringVar(&c.token, "token", "", "bearer token for both APIs, e.g. with the deprecated single-token setup (TOKEN)")
	fs.StringVar(&c.writeToken, "write-token", "", "bearer token (scope write) for the ingest gateway; default --token (WRITE_TOKEN)")
	fs.StringVar(&c.readToken, "read-token", "", "bearer token (scope read) for the query API; default --token (READ_TOKEN)")
	fs.StringVar(&c.tokensFile, "http-tokens-file", "", "the servers' tokens file: its first write and first read token are used where no token flag is given; make run exports it (HTTP_TOKENS_FILE)")
	fs.IntVar(&c.concurrency, "concurrency", 32, "commands in flight at most (CONCURRENCY)")
	fs.IntVar(&c.accounts, "accounts", accounts, "accounts to open (ACCOUNTS)")
	fs.IntVar(&c.commands, "commands", commands, "commands after the opens (COMMANDS)")
	fs.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "workload seed (SEED); the same seed gives the same commands")
	fs.DurationVar(&c.wait, "wait", 10*time.Second, "gateway ?wait= per command (WAIT)")
	fs.DurationVar(&c.visible, "visible-wait", 5*time.Second, "query API wait for read-your-writes (VISIBLE_WAIT)")
	fs.StringVar(&c.prefix, "id-prefix", "", "prefix of every id; default a fresh one per run (ID_PREFIX)")
}

// client returns the HTTP client with its tokens: each from its own flag,
// else --token, else the first of its scope in the tokens file.
func (c *common) client(concurrency int) (*loadgen.Client, error) {
	tokens := loadgen.Tokens{Write: c.writeToken, Read: c.readToken}
	if tokens.Write == "" {
		tokens.Write = c.token
	}
	if tokens.Read == "" {
		tokens.Read = c.token
	}
	if c.tokensFile != "" && (tokens.Write == "" || tokens.Read == "") {
		file, err := config.ReadTokensFile(c.tokensFile)
		if err != nil {
			return nil, err
		}
		for _, t := range file {
			switch {
			case t.Scope == config.ScopeWrite && tokens.Write == "":
				tokens.Write = t.Secret()
			case t.Scope == config.ScopeRead && tokens.Read == "":
				tokens.Read = t.Secret()
			}
		}
		if tokens.Write == "" || tokens.Read == "" {
			return nil, fmt.Errorf("http-tokens-file %s: want a write and a read token", c.tokensFile)
		}
	}
	return loadgen.NewClient(c.ingest, c.query, tokens, concurrency), nil
}

func (c *common) options() loadgen.Options {
	prefix := c.prefix
	if prefix == "" {
		prefix = fmt.Sprintf("r%d-", time.Now().Unix()%1_000_000)
	}
	return loadgen.Options{
		Workload: workload.Options{Seed: c.seed, Accounts: c.accounts, Commands: c.commands, IDPrefix: prefix,
			Currencies: []string{"EUR", "USD", "GBP", "JPY"}, Start: time.Now().UTC().Truncate(time.Millisecond)},
		Concurrency: c.concurrency,
		Wait:        c.wait,
		Visible:     c.visible,
		Progress:    os.Stdout,
	}
}

func run(args []string) error {
	var demo common
	demoFS := flag.NewFlagSet("ledgerload demo", flag.ContinueOnError)
	demo.register(demoFS, 200, 3000)

	var load common
	var rate float64
	loadFS := flag.NewFlagSet("ledgerload run", flag.ContinueOnError)
	load.register(loadFS, 500, 20000)
	loadFS.Float64Var(&rate, "rate", 0, "commands/s to offer; 0 = as fast as the concurrency allows (RATE)")

	var open common
	var oo openFlags
	openFS := flag.NewFlagSet("ledgerload open", flag.ContinueOnError)
	open.register(openFS, 500, 0)
	oo.register(openFS)

	root := &ffcli.Command{
		ShortUsage: "ledgerload <demo|run|open> [flags]",
		Subcommands: []*ffcli.Command{
			{Name: "demo", ShortUsage: "ledgerload demo [flags]", ShortHelp: "run a realistic workload and print a report read back through the query API",
				FlagSet: demoFS, Options: []ff.Option{ff.WithEnvVars()},
				Exec: func(ctx context.Context, _ []string) error { return runDemo(ctx, demo) }},
			{Name: "run", ShortUsage: "ledgerload run [flags]", ShortHelp: "offer commands at a rate and measure throughput and command→visible latency",
				FlagSet: loadFS, Options: []ff.Option{ff.WithEnvVars()},
				Exec: func(ctx context.Context, _ []string) error {
					o := load.options()
					o.Rate = rate
					return runLoad(ctx, load, o)
				}},
			{Name: "open", ShortUsage: "ledgerload open [flags]", ShortHelp: "offer commands open-loop (on schedule, latency from the scheduled time) and report latency, throughput and CPU per command; --search-p99 finds the highest rate that holds a p99",
				FlagSet: openFS, Options: []ff.Option{ff.WithEnvVars()},
				Exec: func(ctx context.Context, _ []string) error { return runOpen(ctx, open, oo) }},
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return root.ParseAndRun(ctx, args)
}

func runLoad(ctx context.Context, c common, o loadgen.Options) error {
	cl, err := c.client(c.concurrency)
	if err != nil {
		return err
	}
	offered := "max"
	if o.Rate > 0 {
		offered = fmt.Sprintf("%.0f/s", o.Rate)
	}
	fmt.Printf("ledgerload run: %d accounts, %d commands, offered rate %s, concurrency %d\n", c.accounts, c.commands, offered, c.concurrency)
	rep, err := loadgen.Run(ctx, cl, o)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\ncommands sent\t%d\t(%d accepted, %d rejected, %d pending, %d errors)\n", rep.Sent, rep.Accepted, rep.Rejected, rep.Pending, rep.Errors)
	fmt.Fprintf(w, "elapsed\t%s\n", rep.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput\t%.0f commands/s\n", rep.Throughput())
	fmt.Fprintf(w, "latency\tp50\tp95\tp99\n")
	fmt.Fprintf(w, "  send → outcome (gateway)\t%s\t%s\t%s\n", rep.Write.Percentile(50).Round(time.Millisecond), rep.Write.Percentile(95).Round(time.Millisecond), rep.Write.Percentile(99).Round(time.Millisecond))
	fmt.Fprintf(w, "  send → visible (query API)\t%s\t%s\t%s\n", rep.EndToEnd.Percentile(50).Round(time.Millisecond), rep.EndToEnd.Percentile(95).Round(time.Millisecond), rep.EndToEnd.Percentile(99).Round(time.Millisecond))
	if rep.Invisible > 0 {
		fmt.Fprintf(w, "not visible within %s\t%d\n", c.visible, rep.Invisible)
	}
	return w.Flush()
}

func runDemo(ctx context.Context, c common) error {
	cl, err := c.client(c.concurrency)
	if err != nil {
		return err
	}
	o := c.options()
	fmt.Printf("demo: opening %d accounts in EUR, USD, GBP and JPY, then %d deposits, withdrawals, transfers (some failing) and closes\n", c.accounts, c.commands)
	rep, err := loadgen.Run(ctx, cl, o)
	if err != nil {
		return err
	}
	fmt.Printf("\n%d commands in %s: %d accepted, %d rejected, %d pending, %d errors\n", rep.Sent, rep.Elapsed.Round(time.Millisecond), rep.Accepted, rep.Rejected, rep.Pending, rep.Errors)
	if err := rep.Model.Settle(ctx, cl, 30*time.Second); err != nil {
		return err
	}
	status := map[string]int{}
	for _, t := range rep.Model.Transfers {
		status[t.Status]++
	}
	fmt.Printf("transfers: %d completed, %d refunded (to a missing or other-currency account)\n", status["completed"], status["refunded"])

	// Balances through the query API, summed per currency.
	sums := map[string]int64{}
	var mismatches int
	ids := make([]string, 0, len(rep.Model.Accounts))
	for id := range rep.Model.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		want := rep.Model.Accounts[id]
		var got struct {
			Balance  int64  `json:"balance"`
			Version  int64  `json:"version"`
			Currency string `json:"currency"`
		}
		code, err := cl.Get(ctx, "/v1/accounts/"+url.PathEscape(id), url.Values{"min_version": {fmt.Sprint(want.Version)}, "wait": {"5s"}}, &got)
		if err != nil || code != 200 {
			return fmt.Errorf("account %s: HTTP %d %v", id, code, err)
		}
		sums[got.Currency] += got.Balance
		if got.Balance != want.Balance || got.Version != want.Version {
			mismatches++
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "currency\tdeposits\twithdrawals\tbalances (query API)\tdeposits − withdrawals\t")
	curs := make([]string, 0, len(rep.Model.Totals))
	for cur := range rep.Model.Totals {
		curs = append(curs, cur)
	}
	sort.Strings(curs)
	for _, cur := range curs {
		t := rep.Model.Totals[cur]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\n", cur, money(t.Deposits), money(t.Withdrawals), money(sums[cur]), money(t.Deposits-t.Withdrawals))
	}
	w.Flush()
	if mismatches > 0 {
		return fmt.Errorf("%d accounts differ between the query API and the outcomes", mismatches)
	}
	fmt.Printf("every one of %d accounts matches its command outcomes; money is conserved per currency\n", len(ids))

	var top any
	if code, err := cl.Get(ctx, "/v1/analytics/top-accounts", url.Values{"by": {"balance"}, "limit": {"5"}}, &top); err == nil && code == 200 {
		fmt.Printf("top accounts by balance: %s\n", compact(top))
	}
	var summary any
	from := o.Workload.Start.Add(-time.Hour).Format(time.RFC3339)
	to := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	if code, err := cl.Get(ctx, "/v1/analytics/summary", url.Values{"from": {from}, "to": {to}}, &summary); err == nil && code == 200 {
		fmt.Printf("analytics summary (ClickHouse): %s\n", compact(summary))
	}
	return nil
}

// money formats minor units as major.minor with integer arithmetic only.
func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if s := string(b); len(s) > 800 {
		return s[:800] + "…"
	}
	return string(b)
}
