package chsink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestSQLCorpus drives every kind of statement the ClickHouse view sends
// (the DDL, the projector's INSERTs and reads, the query API's readers, the
// generation marker, the rebuild lock and a swap) against the local stack's
// ClickHouse 18.16 and records each one that succeeded, with its arguments
// bound into the text. With LEDGER_SQL_CORPUS set it writes them, in order,
// to that file (a JSON list of {"sql"}): scripts/sqlcheck runs the same
// sequence on a current ClickHouse (chdb-core), a step of make test.
func TestSQLCorpus(t *testing.T) {
	conn, db := testenv.ClickHouseDB(t)
	rec := &recorder{Conn: conn}
	ctx := ctxFor(t)
	opts := Options{Database: db, BatchRows: 40}
	if err := Migrate(ctx, rec, opts); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := generate(t, 11, "sq-", 6, 120)
	applyAll(t, v, h.batches(50))
	// A redelivery from a cold view: the position and version lookups.
	v2, err := NewView(rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v2, h.batches(50)[1:])
	checkAccounts(t, v2, h)

	from, to := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	id := h.accountIDs()[0]
	rows, cursor, err := v.History(ctx, id, from, to, "", 5)
	if err != nil || len(rows) == 0 {
		t.Fatalf("history: %d rows, %v", len(rows), err)
	}
	if _, _, err := v.History(ctx, id, from, to, cursor, 5); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v.BalanceAt(ctx, id, to); err != nil {
		t.Fatal(err)
	}
	sums, err := v.Summary(ctx, from, to)
	if err != nil || len(sums) == 0 {
		t.Fatalf("summary: %v %v", sums, err)
	}
	// The cluster's time series (from ledger_events) has the same text on
	// one server: a view with a cluster name only builds it.
	vc, err := NewView(rec, Options{Database: db, Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, view := range []*View{v, vc} {
		for _, m := range projection.Metrics() {
			if _, err := view.TimeSeries(ctx, m, 24*time.Hour, from, to, sums[0].Currency); err != nil {
				t.Fatalf("time series %s: %v", m, err)
			}
		}
		if _, err := view.TimeSeries(ctx, "events", time.Hour, from, to, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, by := range []string{"balance", "volume"} {
		if _, err := v.TopAccounts(ctx, by, 5); err != nil {
			t.Fatalf("top accounts by %s: %v", by, err)
		}
	}

	// An erasure's redaction of one account (ALTER TABLE … UPDATE).
	var red []projection.Event
	for _, e := range h.events {
		if e.AggregateID == id {
			e.Redacted = true
			red = append(red, e)
		}
	}
	if err := v.Redact(ctx, red); err != nil {
		t.Fatal(err)
	}

	// A rebuild: its lock, generation 1, the switch.
	rv, err := NewRebuildView(ctx, rec, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lock := rv.Lock()
	if err := lock.Acquire(ctx, "corpus"); err != nil {
		t.Fatal(err)
	}
	if err := lock.Renew(ctx, "corpus"); err != nil {
		t.Fatal(err)
	}
	sink, _, err := rv.Prepare(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Apply(ctx, h.events); err != nil {
		t.Fatal(err)
	}
	if err := rv.Pause(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WatchGeneration(rec, NewMarker(rec, opts), opts, slog.New(slog.DiscardHandler))(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rv.Switch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if gen, err := rv.Current(ctx); err != nil || gen != 1 {
		t.Fatalf("current generation %d, %v", gen, err)
	}
	if err := lock.Release(ctx, "corpus"); err != nil {
		t.Fatal(err)
	}
	v3, err := NewView(rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounts(t, v3, h)

	stmts := rec.statements()
	t.Logf("%d statements recorded", len(stmts))
	if path := os.Getenv("LEDGER_SQL_CORPUS"); path != "" {
		b, err := json.MarshalIndent(map[string]any{"database": db, "statements": stmts}, "", "  ")
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// recorder is a driver.Conn that records every statement that succeeded,
// with its arguments bound (see bindSQL); INSERTs through PrepareBatch
// become INSERT … VALUES.
type recorder struct {
	driver.Conn
	mu    sync.Mutex
	stmts []map[string]string
}

func (r *recorder) add(q string, args []any) {
	sql, err := bindSQL(q, args)
	if err != nil {
		panic(fmt.Sprintf("corpus: %v in %s", err, firstLine(q)))
	}
	r.mu.Lock()
	r.stmts = append(r.stmts, map[string]string{"sql": sql})
	r.mu.Unlock()
}

func (r *recorder) statements() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]string(nil), r.stmts...)
}

func (r *recorder) Exec(ctx context.Context, q string, args ...any) error {
	err := r.Conn.Exec(ctx, q, args...)
	if err == nil {
		r.add(q, args)
	}
	return err
}

func (r *recorder) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	rows, err := r.Conn.Query(ctx, q, args...)
	if err == nil {
		r.add(q, args)
	}
	return rows, err
}

func (r *recorder) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	row := r.Conn.QueryRow(ctx, q, args...)
	if row.Err() == nil {
		r.add(q, args)
	}
	return row
}

func (r *recorder) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := r.Conn.PrepareBatch(ctx, q, opts...)
	if err != nil {
		return nil, err
	}
	return &recBatch{Batch: b, r: r, q: q}, nil
}

type recBatch struct {
	driver.Batch
	r    *recorder
	q    string
	rows [][]any
}

func (b *recBatch) Append(v ...any) error {
	if err := b.Batch.Append(v...); err != nil {
		return err
	}
	b.rows = append(b.rows, v)
	return nil
}

func (b *recBatch) Send() error {
	if err := b.Batch.Send(); err != nil {
		return err
	}
	var vals []string
	for _, row := range b.rows {
		lits := make([]string, len(row))
		for i, a := range row {
			l, err := literal(a)
			if err != nil {
				return err
			}
			lits[i] = l
		}
		vals = append(vals, "("+strings.Join(lits, ", ")+")")
	}
	if len(vals) > 0 {
		b.r.add(b.q+" VALUES "+strings.Join(vals, ", "), nil)
	}
	return nil
}

// bindSQL replaces each ? of q (none of this package's statements has one
// inside a string literal) with args' literals in order.
func bindSQL(q string, args []any) (string, error) {
	var sb strings.Builder
	n := 0
	for _, c := range q {
		if c != '?' {
			sb.WriteRune(c)
			continue
		}
		if n >= len(args) {
			return "", fmt.Errorf("more placeholders than %d arguments", len(args))
		}
		l, err := literal(args[n])
		if err != nil {
			return "", err
		}
		sb.WriteString(l)
		n++
	}
	if n != len(args) {
		return "", fmt.Errorf("%d placeholders, %d arguments", n, len(args))
	}
	return sb.String(), nil
}

// literal is a ClickHouse literal of a value this package binds.
func literal(a any) (string, error) {
	switch x := a.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(x) + "'", nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case time.Time:
		return "'" + x.UTC().Format("2006-01-02 15:04:05") + "'", nil
	case clickhouse.GroupSet:
		lits := make([]string, len(x.Value))
		for i, v := range x.Value {
			l, err := literal(v)
			if err != nil {
				return "", err
			}
			lits[i] = l
		}
		return "(" + strings.Join(lits, ", ") + ")", nil
	case []any:
		lits := make([]string, len(x))
		for i, v := range x {
			l, err := literal(v)
			if err != nil {
				return "", err
			}
			lits[i] = l
		}
		return "(" + strings.Join(lits, ", ") + ")", nil
	}
	return "", fmt.Errorf("no literal for %T", a)
}
