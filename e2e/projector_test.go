package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// views is where one test's projector writes: a Redis key prefix (on the
// shared or a private Redis) and a ClickHouse database.
type views struct {
	redisAddr string
	rdb       *redis.Client
	prefix    string
	chAddr    string
	ch        clickhouse.Conn
	db        string
}

func newViews(t *testing.T, redisAddr string) *views {
	t.Helper()
	v := &views{chAddr: testenv.ClickHouse(t)}
	v.ch, v.db = testenv.ClickHouseDB(t)
	if redisAddr == "" {
		v.rdb, v.prefix = testenv.RedisClient(t)
		v.redisAddr = testenv.Redis(t)
	} else {
		v.redisAddr = redisAddr
		v.rdb = redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { _ = v.rdb.Close() })
		v.prefix = "ledger:"
	}
	return v
}

// env is the projector's (and its rebuild's) environment for these views.
func (v *views) env() []string {
	// The shared stores' administrators, or none for a private server.
	ruser, rpass := testenv.RedisAuth(v.redisAddr)
	ch := testenv.ClickHouseAuth(v.chAddr)
	if ch.Username == "" {
		ch.Username = "default"
	}
	return []string{
		"REDIS_ADDR=" + v.redisAddr, "REDIS_KEY_PREFIX=" + v.prefix,
		"REDIS_USERNAME=" + ruser, "REDIS_PASSWORD=" + rpass,
		"CLICKHOUSE_ADDR=" + v.chAddr, "CLICKHOUSE_DATABASE=" + v.db,
		"CLICKHOUSE_USERNAME=" + ch.Username, "CLICKHOUSE_PASSWORD=" + ch.Password,
		// A SIGKILLed member's partitions move on within seconds.
		"GROUP_SESSION_TIMEOUT=6s",
	}
}

// diff compares both views with the fold of the events and returns the
// differences (at most a few of each kind).
func (v *views) diff(ctx context.Context, l *audit.Ledger) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < 20 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	status := func(a *audit.Account) string {
		if a.Closed {
			return "closed"
		}
		return "open"
	}
	reader, err := redissink.NewReader(v.rdb, redissink.Options{Prefix: v.prefix}, time.Nanosecond)
	if err != nil {
		return []string{err.Error()}
	}
	for id, a := range l.Accounts {
		got, ok, err := reader.Account(ctx, id)
		switch {
		case err != nil:
			add("redis %s: %v", id, err)
		case !ok:
			add("redis %s: missing", id)
		case got.Balance != a.Balance || got.Version != a.Version || got.Status != status(a) || got.Currency != a.Currency:
			add("redis %s: balance %d version %d status %s, fold %d %d %s", id, got.Balance, got.Version, got.Status, a.Balance, a.Version, status(a))
		}
	}
	pattern := redissink.GenerationPattern(v.prefix, reader.Generation())
	n := 0
	iter := v.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		if strings.HasSuffix(iter.Val(), "}:account") {
			n++
		}
	}
	if err := iter.Err(); err != nil {
		add("redis scan: %v", err)
	} else if n != len(l.Accounts) {
		add("redis: %d account keys, fold has %d accounts", n, len(l.Accounts))
	}

	rows, err := v.ch.Query(ctx, "SELECT account_id, balance, version, status, currency FROM "+v.db+".account_balances FINAL")
	if err != nil {
		return append(out, fmt.Sprintf("clickhouse balances: %v", err))
	}
	seen := 0
	for rows.Next() {
		var id, st, cur string
		var bal int64
		var ver uint64
		if err := rows.Scan(&id, &bal, &ver, &st, &cur); err != nil {
			rows.Close()
			return append(out, err.Error())
		}
		seen++
		a, ok := l.Accounts[id]
		switch {
		case !ok:
			add("clickhouse %s: not in the fold", id)
		case bal != a.Balance || int64(ver) != a.Version || st != status(a) || cur != a.Currency:
			add("clickhouse %s: balance %d version %d status %s, fold %d %d %s", id, bal, ver, st, a.Balance, a.Version, status(a))
		}
	}
	rows.Close()
	if seen != len(l.Accounts) {
		add("clickhouse: %d balance rows, fold has %d accounts", seen, len(l.Accounts))
	}
	rows, err = v.ch.Query(ctx, "SELECT aggregate_id, count() FROM "+v.db+".ledger_events FINAL GROUP BY aggregate_id")
	if err != nil {
		return append(out, fmt.Sprintf("clickhouse events: %v", err))
	}
	defer rows.Close()
	seen = 0
	for rows.Next() {
		var id string
		var c uint64
		if err := rows.Scan(&id, &c); err != nil {
			return append(out, err.Error())
		}
		seen++
		if a, ok := l.Accounts[id]; !ok {
			add("clickhouse events of %s: %d rows, not in the fold", id, c)
		} else if int64(c) != a.Version {
			add("clickhouse events of %s: %d rows, fold version %d", id, c, a.Version)
		}
	}
	if seen != len(l.Accounts) {
		add("clickhouse: events of %d aggregates, fold has %d", seen, len(l.Accounts))
	}
	return out
}

// waitExact waits until both views equal the fold.
func (v *views) waitExact(t *testing.T, ctx context.Context, l *audit.Ledger, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := v.diff(ctx, l)
		if len(d) == 0 {
			t.Logf("views equal the fold: %d accounts, %d events", len(l.Accounts), l.Events)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("views differ from the fold after %s:\n%s", timeout, strings.Join(d, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startPipeline starts one processor (`ingest serve`) and one projector of
// v, and waits until both are ready.
func (s *stack) startPipeline(t *testing.T, v *views) (ing, p *proc) {
	t.Helper()
	ing = s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=p"), "serve")
	ing.waitReady(t, 60*time.Second)
	p = s.start("projector", v.env())
	p.waitReady(t, 60*time.Second)
	return ing, p
}

// produceExact produces cmds, waits until the processor has handled every
// command, then until both views equal the fold of the events (within
// timeout), and returns the fold.
func (s *stack) produceExact(t *testing.T, ctx context.Context, v *views, cmds []workload.Command, timeout time.Duration) *audit.Ledger {
	t.Helper()
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}
	l := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	v.waitExact(t, ctx, l, timeout)
	return l
}

// trickle produces cmds in chunks with pauses, so faults land mid-stream.
func trickle(ctx context.Context, s *stack, cmds []workload.Command, chunk int, pause time.Duration) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < len(cmds); i += chunk {
			if err := workload.Produce(ctx, s.client, s.names.Commands, cmds[i:min(i+chunk, len(cmds))], nil); err != nil {
				errc <- err
				return
			}
			time.Sleep(pause)
		}
		errc <- nil
	}()
	return errc
}

// metricSum sums the samples of a metric whose line contains every filter.
func metricSum(addr, name string, filters ...string) float64 {
	_, body := testenv.Get(addr, "/metrics")
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, f := range filters {
			ok = ok && strings.Contains(line, f)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if x, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += x
		}
	}
	return sum
}

// TestProjectorSIGKILL kills the projector (both views) with SIGKILL several
// times while events stream in, small batches so kills land mid-batch, and
// checks that Redis and ClickHouse end up equal to the fold of the events.
func TestProjectorSIGKILL(t *testing.T) {
	s := newStack(t, 4)
	v := newViews(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ing := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=p"), "serve")
	ing.waitReady(t, 60*time.Second)
	cmds := workload.Generate(workload.Options{Seed: 51, Accounts: 200, Commands: 3000, IDPrefix: "pk-"})
	producing := trickle(ctx, s, cmds, 300, 300*time.Millisecond)

	env := append(v.env(), "MAX_BATCH=50", "MAX_DELAY=20ms")
	r := rand.New(rand.NewPCG(5, 1))
	for kill := 1; kill <= 4; kill++ {
		p := s.start("projector", env)
		p.waitReady(t, 60*time.Second)
		d := time.Duration(400+r.IntN(1200)) * time.Millisecond
		time.Sleep(d)
		p.kill(t)
		t.Logf("SIGKILL %d after %s", kill, d)
	}
	if err := <-producing; err != nil {
		t.Fatal(err)
	}
	final := s.start("projector", env)
	final.waitReady(t, 60*time.Second)
	l := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	if problems := l.Check(true); len(problems) > 0 {
		t.Fatalf("events break invariants: %v", problems[:min(5, len(problems))])
	}
	v.waitExact(t, ctx, l, 90*time.Second)
	final.stop(t)
	ing.stop(t)
}

// TestProjectorRedisOutage stops the projector's (private) Redis for 20 s
// under load: the process stays up, /readyz says 503 and the lag shows,
// and once Redis is back both views recover exactly.
func TestProjectorRedisOutage(t *testing.T) { testOutage(t, "redis") }

// TestProjectorClickHouseOutage is the same with a private ClickHouse.
func TestProjectorClickHouseOutage(t *testing.T) { testOutage(t, "clickhouse") }

func testOutage(t *testing.T, sink string) {
	var v *views
	var stopStore, startStore func()
	if sink == "redis" {
		var addr string
		addr, stopStore, startStore = testenv.StartRedis(t)
		v = newViews(t, addr)
	} else {
		v = newViews(t, "")
		addr, stop, start := testenv.StartClickHouse(t)
		stopStore, startStore = stop, start
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: "default"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		v.chAddr, v.ch, v.db = addr, conn, "ledger"
	}
	s := newStack(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ing := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=p"), "serve")
	ing.waitReady(t, 60*time.Second)
	p := s.start("projector", append(v.env(), "MAX_BATCH=200"))
	p.waitReady(t, 60*time.Second)

	cmds := workload.Generate(workload.Options{Seed: 52, Accounts: 150, Commands: 2500, IDPrefix: "po-"})
	third := len(cmds) / 3
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds[:third], nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stopStore()
	t.Logf("%s stopped", sink)
	producing := trickle(ctx, s, cmds[third:2*third], 200, 500*time.Millisecond)
	down := time.Now()
	sawNotReady, sawLag := false, false
	for time.Since(down) < 20*time.Second {
		select {
		case err := <-p.done:
			t.Fatalf("projector exited while %s was down: %v\n%s", sink, err, tail(p.logs.String(), 40))
		case <-time.After(500 * time.Millisecond):
		}
		if code, _ := testenv.Get(p.admin, "/readyz"); code == http.StatusServiceUnavailable {
			sawNotReady = true
		}
		if metricSum(p.admin, "ledger_projector_lag", `sink="`+sink+`"`) > 0 {
			sawLag = true
		}
	}
	if err := <-producing; err != nil {
		t.Fatal(err)
	}
	if !sawNotReady || !sawLag {
		t.Fatalf("while %s was down: /readyz 503 seen %v, lag > 0 seen %v", sink, sawNotReady, sawLag)
	}
	startStore()
	t.Logf("%s started again", sink)
	s.produceExact(t, ctx, v, cmds[2*third:], 90*time.Second)
	p.waitReady(t, 30*time.Second)
	select {
	case err := <-p.done:
		t.Fatalf("projector exited: %v", err)
	default:
	}
	if n := strings.Count(p.logs.String(), `"msg":"projector started"`); n != 2 {
		t.Fatalf("want one start per projector (2), got %d: a crash loop inside the process?", n)
	}
	p.stop(t)
	ing.stop(t)
}

// TestProjectorRebuild plants data the events cannot produce, rebuilds both
// views while commands stream in and readers read, and checks that the
// planted data is gone, both views equal the fold, the live projector went
// on in the new generation, and no read failed during the rebuilds.
func TestProjectorRebuild(t *testing.T) {
	s := newStack(t, 4)
	v := newViews(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ing, p := s.startPipeline(t, v)

	cmds := workload.Generate(workload.Options{Seed: 53, Accounts: 200, Commands: 4000, IDPrefix: "pr-"})
	half := len(cmds) / 2
	l := s.produceExact(t, ctx, v, cmds[:half], 60*time.Second)

	// Plant an account no event justifies, in both views.
	fake := "pr-fake-account"
	if err := v.rdb.HSet(ctx, v.prefix+"{"+fake+"}:account", "account_id", fake, "balance", "1000000", "version", "1",
		"status", "open", "currency", "EUR").Err(); err != nil {
		t.Fatal(err)
	}
	planter, err := chsink.NewView(v.ch, chsink.Options{Database: v.db})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := planter.Apply(ctx, []projection.Event{{
		Type: "ledger.events.AccountOpened", EventID: "fake-1", AggregateID: fake, Version: 1, CommandID: "fake", OccurredAt: now,
		Value: &codec.AccountOpened{EventID: "fake-1", AggregateID: fake, Version: 1, CommandID: "fake", OccurredAt: now, Owner: "x", Currency: "EUR"},
	}}); err != nil {
		t.Fatal(err)
	}
	if d := v.diff(ctx, l); len(d) < 2 {
		t.Fatalf("planted account not seen by the comparison: %v", d)
	}

	// Readers query accounts known before the rebuild, all the time.
	var ids []string
	for id := range l.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	reader, err := redissink.NewReader(v.rdb, redissink.Options{Prefix: v.prefix}, 0)
	if err != nil {
		t.Fatal(err)
	}
	chView, err := chsink.NewView(v.ch, chsink.Options{Database: v.db})
	if err != nil {
		t.Fatal(err)
	}
	var reads, failures atomic.Int64
	var firstFailure atomic.Value
	rctx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	read := func(view string, get func(ctx context.Context, id string) (bool, error)) {
		defer wg.Done()
		for i := 0; rctx.Err() == nil; i++ {
			id := ids[i%len(ids)]
			ok, err := get(rctx, id)
			if rctx.Err() != nil {
				return
			}
			reads.Add(1)
			if err != nil || !ok {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s %s: ok=%v err=%v", view, id, ok, err))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Add(2)
	go read("redis", func(ctx context.Context, id string) (bool, error) {
		_, ok, err := reader.Account(ctx, id)
		return ok, err
	})
	go read("clickhouse", func(ctx context.Context, id string) (bool, error) {
		_, ok, err := chView.Account(ctx, id)
		return ok, err
	})

	producing := trickle(ctx, s, cmds[half:], 100, 250*time.Millisecond)
	for _, view := range []string{"redis", "clickhouse"} {
		start := time.Now()
		out, err := s.run("projector", v.env(), "rebuild", "-view", view, "-progress=false")
		if err != nil {
			t.Fatalf("rebuild %s: %v\n%s", view, err, tail(out, 40))
		}
		t.Logf("rebuild %s took %s: %s", view, time.Since(start).Round(time.Millisecond), lastLine(out))
	}
	if err := <-producing; err != nil {
		t.Fatal(err)
	}
	l = s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	v.waitExact(t, ctx, l, 90*time.Second)
	stopReading()
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d reads failed during the rebuilds; first: %v", n, reads.Load(), firstFailure.Load())
	}
	t.Logf("%d reads during the rebuilds, none failed", reads.Load())

	// The planted data is gone, and so is the old Redis generation.
	if gen := reader.Generation(); gen != 1 {
		t.Fatalf("redis reader on generation %d, want 1", gen)
	}
	if _, ok, err := reader.Account(ctx, fake); ok || err != nil {
		t.Fatalf("planted account after the rebuild: ok=%v err=%v", ok, err)
	}
	if keys, _, err := v.rdb.Scan(ctx, 0, redissink.GenerationPattern(v.prefix, 0), 1000).Result(); err != nil || len(keys) > 0 {
		t.Fatalf("generation 0 keys left: %v %v", keys, err)
	}
	var planted uint64
	if err := v.ch.QueryRow(ctx, "SELECT count() FROM "+v.db+".ledger_events WHERE aggregate_id = '"+fake+"'").Scan(&planted); err != nil || planted != 0 {
		t.Fatalf("planted events after the rebuild: %d %v", planted, err)
	}
	// The live projector writes the new generations: new commands show up.
	more := workload.Generate(workload.Options{Seed: 54, Accounts: 5, Commands: 20, IDPrefix: "pr2-"})
	l = s.produceExact(t, ctx, v, more, 60*time.Second)

	// A second rebuild of each, from generation 1 to 2, and still exact.
	for _, view := range []string{"redis", "clickhouse"} {
		if out, err := s.run("projector", v.env(), "rebuild", "-view", view, "-progress=false"); err != nil {
			t.Fatalf("second rebuild %s: %v\n%s", view, err, tail(out, 40))
		}
	}
	more = workload.Generate(workload.Options{Seed: 55, Accounts: 5, Commands: 20, IDPrefix: "pr3-"})
	l = s.produceExact(t, ctx, v, more, 60*time.Second)
	if gen, err := redissink.CurrentGeneration(ctx, v.rdb, v.prefix); err != nil || gen != 2 {
		t.Fatalf("redis generation %d (%v), want 2", gen, err)
	}
	if keys, _, err := v.rdb.Scan(ctx, 0, redissink.GenerationPattern(v.prefix, 1), 1000).Result(); err != nil || len(keys) > 0 {
		t.Fatalf("generation 1 keys left: %v %v", keys, err)
	}
	p.stop(t)
	ing.stop(t)
}

// run runs a binary to completion with the stack's environment plus env.
func (s *stack) run(name string, env []string, args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(s.t, name), args...)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+s.kafka.Brokers, "TOPIC_PREFIX="+s.kafka.TopicPrefix, "LOG_LEVEL=info")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestRebuildFaults: two rebuilds of one view started together, for each
// view: one runs, the other is refused and names the holder. Then a
// ClickHouse rebuild is SIGKILLed while the live projectors are paused for
// its switch: once its lock lapses they settle the switch and go on by
// themselves, the views end exact, and the next rebuild works.
func TestRebuildFaults(t *testing.T) {
	s := newStack(t, 2)
	v := newViews(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ing, p := s.startPipeline(t, v)
	cmds := workload.Generate(workload.Options{Seed: 57, Accounts: 50, Commands: 600, IDPrefix: "rf-"})
	half := len(cmds) / 2
	l := s.produceExact(t, ctx, v, cmds[:half], 60*time.Second)

	type result struct {
		out string
		err error
	}
	for _, view := range []string{"redis", "clickhouse"} {
		results := make(chan result, 2)
		for range 2 {
			go func() {
				out, err := s.run("projector", v.env(), "rebuild", "-view", view, "-progress=false")
				results <- result{out, err}
			}()
		}
		ran, refused := 0, 0
		for range 2 {
			r := <-results
			switch {
			case r.err == nil:
				ran++
			case strings.Contains(r.out, "another rebuild of the "+view+" view is running"):
				refused++
				t.Logf("%s: refused: %s", view, lastLine(r.out))
			default:
				t.Fatalf("rebuild %s: %v\n%s", view, r.err, tail(r.out, 40))
			}
		}
		if ran != 1 || refused != 1 {
			t.Fatalf("two rebuilds of %s at once: %d ran, %d refused; want 1 and 1", view, ran, refused)
		}
	}
	v.waitExact(t, ctx, l, 60*time.Second)

	state := func() string {
		var st string
		err := v.ch.QueryRow(ctx, "SELECT state FROM "+v.db+".projector_generation ORDER BY seq DESC LIMIT 1").Scan(&st)
		if err != nil {
			t.Fatalf("read the generation marker: %v", err)
		}
		return st
	}
	const pausedLog = "paused: a rebuild is switching"
	pauses := strings.Count(p.logs.String(), pausedLog)
	rb := s.start("projector", v.env(), "rebuild", "-view", "clickhouse", "-progress=false")
	for state() != "switching" {
		select {
		case err := <-rb.done:
			t.Fatalf("the rebuild ended (%v) before it switched\n%s", err, tail(rb.logs.String(), 40))
		case <-time.After(5 * time.Millisecond):
		}
	}
	rb.kill(t)
	killed := time.Now()
	for strings.Count(p.logs.String(), pausedLog) == pauses {
		if time.Since(killed) > 30*time.Second {
			t.Fatal("the live ClickHouse projector did not pause for the switch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Paused: what comes now reaches ClickHouse only once the switch is settled.
	l = s.produceExact(t, ctx, v, cmds[half:], 90*time.Second)
	t.Logf("views exact %s after the rebuild was killed mid-switch", time.Since(killed).Round(time.Millisecond))
	if st := state(); st != "current" {
		t.Fatalf("marker %q after recovery, want current", st)
	}
	if !strings.Contains(p.logs.String(), "switch settled from the tables") {
		t.Fatal("the live projector did not log settling the abandoned switch")
	}
	if out, err := s.run("projector", v.env(), "rebuild", "-view", "clickhouse", "-progress=false"); err != nil {
		t.Fatalf("rebuild after the killed one: %v\n%s", err, tail(out, 40))
	}
	more := workload.Generate(workload.Options{Seed: 58, Accounts: 5, Commands: 20, IDPrefix: "rf2-"})
	l = s.produceExact(t, ctx, v, more, 60*time.Second)
	p.stop(t)
	ing.stop(t)
}
