package chsink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// View is the ClickHouse read model: every event as a row of ledger_events,
// the latest state of every account in account_balances, and (through a
// materialized view) hourly volume per currency. It implements
// projection.View and the readers of the query API.
//
// Apply is idempotent per (aggregate, version) without relying on merges:
//   - An event is inserted into ledger_events only if its (aggregate_id,
//     version) is not there yet. The view remembers, per aggregate, the
//     highest version it knows to be the end of that aggregate's rows; for
//     an aggregate it has not seen since start (or since a failed Apply, or
//     whose rows have a hole) it first asks ledger_events which versions
//     from the batch's lowest one up exist. Redelivery therefore inserts
//     nothing, and the summing materialized view over ledger_events stays
//     exact. Events after a gap are still recorded in ledger_events.
//   - Account states are folded with projection.NextAccount from the state
//     stored in account_balances (loaded lazily with FINAL, then cached):
//     an event applies only if its version is the stored version + 1; older
//     ones are skipped, and after a gap nothing more applies to that account
//     until the gap is filled.
//   - Values that are not ledger events are skipped (nothing is written).
//
// ledger_events is written before account_balances, so a crash between the
// two leaves events whose balance is not yet folded; the retry finds the
// events present, skips them, and folds them into the balance.
//
// Like every Sink, a View is used by one goroutine at a time; the readers
// (Account, History, …) are safe for concurrent use.
type View struct {
	conn driver.Conn
	opts Options
	d    ddl
	t    tables

	accounts map[string]projection.AccountView // stored state; Version 0 = none
	written  map[string]int64                  // highest version present in ledger_events
}

var _ projection.View = (*View)(nil)

// NewView returns a view writing the generation in opts. It does not create
// tables; run Migrate first.
func NewView(conn driver.Conn, opts Options) (*View, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	return &View{
		conn: conn, opts: opts, d: ddl{opts}, t: tablesOf(opts.Generation),
		accounts: map[string]projection.AccountView{},
		written:  map[string]int64{},
	}, nil
}

// Name implements projection.Sink.
func (v *View) Name() string { return "clickhouse" }

// Ping implements projection.Sink.
func (v *View) Ping(ctx context.Context) error { return v.conn.Ping(ctx) }

func groupSet(v []any) clickhouse.GroupSet { return clickhouse.GroupSet{Value: v} }

// eventRow is one row of ledger_events.
type eventRow struct {
	EventID, AggregateID                string
	Version                             int64
	Type                                string
	CommandID, CorrelationID, Causation string
	OccurredAt                          time.Time
	Currency                            string
	Amount, BalanceAfter                int64
	TransferID, Counterparty            string
	Owner                               string
	OverdraftLimit                      int64
	Reference, Reason                   string
	Partition                           int32
	Offset                              int64
	money                               bool // carries balance_after
	known                               bool // an event type of this package
}

// rowOf flattens e; known is false for a value that is not a ledger event.
func rowOf(e projection.Event) eventRow {
	r := eventRow{
		EventID: e.EventID, AggregateID: e.AggregateID, Version: e.Version, CommandID: e.CommandID,
		OccurredAt: e.OccurredAt, Partition: e.Partition, Offset: e.Offset,
	}
	f, ok := codec.FactsOf(e.Value)
	if !ok {
		return r // not a ledger event (projection.ErrUnknownEvent)
	}
	r.Type = f.Short
	if r.EventID == "" {
		r.EventID = f.EventID
	}
	if r.AggregateID == "" {
		r.AggregateID = f.AggregateID
	}
	if r.Version == 0 {
		r.Version = f.Version
	}
	if r.CommandID == "" {
		r.CommandID = f.CommandID
	}
	if r.OccurredAt.IsZero() {
		r.OccurredAt = f.OccurredAt
	}
	r.CorrelationID, r.Causation = f.CorrelationID, f.CausationID
	r.Currency, r.Owner, r.OverdraftLimit = f.Currency, f.Owner, f.OverdraftLimit
	r.money, r.Amount, r.BalanceAfter = f.Money, f.Amount, f.BalanceAfter
	r.TransferID, r.Counterparty, r.Reference, r.Reason = f.TransferID, f.Counterparty, f.Reference, f.Reason
	r.known = r.Type != ""
	r.OccurredAt = r.OccurredAt.UTC().Truncate(time.Millisecond)
	return r
}

// Apply implements projection.Sink; see View for how it stays idempotent.
func (v *View) Apply(ctx context.Context, batch []projection.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if len(v.accounts) > v.opts.CacheSize || len(v.written) > v.opts.CacheSize {
		v.Reset()
	}
	rows := make([]eventRow, len(batch))
	var aggs []string
	seen := map[string]bool{}
	for i, e := range batch {
		rows[i] = rowOf(e)
		if !rows[i].known {
			continue // not a ledger event (projection.ErrUnknownEvent): skipped
		}
		if a := rows[i].AggregateID; !seen[a] {
			seen[a] = true
			aggs = append(aggs, a)
			v.revalidate(a, rows[i].Version)
		}
	}
	if err := v.load(ctx, aggs); err != nil {
		v.forget(aggs)
		return err
	}
	tails, err := v.present(ctx, rows)
	if err != nil {
		v.forget(aggs)
		return err
	}

	states := map[string]projection.AccountView{}
	var inserts []eventRow
	for i, r := range rows {
		if !r.known {
			continue
		}
		st, ok := states[r.AggregateID]
		if !ok {
			st = v.accounts[r.AggregateID]
		}
		if r.Currency == "" {
			r.Currency = st.Currency // AccountClosed carries none
		}
		if next, applied := projection.NextAccount(st, st.Version > 0, batch[i]); applied {
			next.UpdatedAt = next.UpdatedAt.Truncate(time.Millisecond)
			states[r.AggregateID] = next
		}
		if tl := tails[r.AggregateID]; r.Version > tl.base && !tl.have[r.Version] {
			tl.have[r.Version] = true
			inserts = append(inserts, r)
		}
	}
	if err := v.insertEvents(ctx, inserts); err != nil {
		v.forget(aggs)
		return err
	}
	if err := v.insertBalances(ctx, states); err != nil {
		v.forget(aggs)
		return err
	}
	for a, tl := range tails {
		if w, ok := tl.contiguous(); ok {
			v.written[a] = w
		} else {
			delete(v.written, a) // ask the table next time
		}
	}
	for a, st := range states {
		v.accounts[a] = st
	}
	return nil
}

// revalidate drops the cached knowledge of aggregate a if first, the
// aggregate's first version in a batch, does not follow it: another
// instance may have written the aggregate meanwhile (the partition moved
// away and back), so the store is asked again rather than a gap assumed.
func (v *View) revalidate(a string, first int64) {
	if st, ok := v.accounts[a]; ok && first > st.Version+1 {
		delete(v.accounts, a)
	}
	if w, ok := v.written[a]; ok && first > w+1 {
		delete(v.written, a)
	}
}

// Reset empties the caches, so that every aggregate's state is read from
// the store again. Call it when partitions are assigned: another instance
// may have written the tables while this one did not own them.
func (v *View) Reset() {
	v.accounts, v.written = map[string]projection.AccountView{}, map[string]int64{}
}

// forget drops cached knowledge of aggs: after a failed write it is unknown
// what reached the store.
func (v *View) forget(aggs []string) {
	for _, a := range aggs {
		delete(v.accounts, a)
		delete(v.written, a)
	}
}

// Statements that name ids are cut into chunks of at most inChunk ids and
// chunkBytes bytes of ids, so that no statement nears ClickHouse's
// max_query_size (256 KiB by default; clickhouse-go inlines bound values)
// whatever the ids' lengths. Regression: 1,000 new accounts of ~260-byte ids
// in one batch, or one id of 300 KB, made every retry fail with "Max query
// size exceeded", stopping the projector for good.
const (
	inChunk    = 1000
	chunkBytes = 64 << 10
)

// maxIDQueryBytes is the max_query_size of statements that name ids: a
// chunk holds at least one id, and ids written before the domain bounded
// them (domain.MaxIDBytes) may be as long as a Kafka record.
const maxIDQueryBytes = 4 << 20

// idQuery raises max_query_size for a statement that names ids.
func idQuery(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_query_size": maxIDQueryBytes}))
}

// nextChunk returns how many of ids (from the start) go into the next
// statement, given that each id costs its length plus overhead bytes: at
// least one, at most max.
func nextChunk(ids []string, max, overhead int) int {
	n, size := 0, 0
	for n < len(ids) && n < max {
		size += 2*len(ids[n]) + overhead // quoting may double a byte
		if n > 0 && size > chunkBytes {
			break
		}
		n++
	}
	return n
}

// load fills the account cache for the aggregates of aggs not in it.
func (v *View) load(ctx context.Context, aggs []string) error {
	var missing []string
	for _, a := range aggs {
		if _, ok := v.accounts[a]; !ok {
			missing = append(missing, a)
		}
	}
	for len(missing) > 0 {
		n := nextChunk(missing, inChunk, 4)
		chunk := missing[:n]
		missing = missing[n:]
		set := make([]any, len(chunk))
		for i, a := range chunk {
			set[i] = a
		}
		found, err := v.readAccounts(ctx, "account_id IN ?", groupSet(set))
		if err != nil {
			return err
		}
		for _, a := range chunk {
			v.accounts[a] = found[a] // zero value: not there yet
		}
	}
	return nil
}

// tail is what ledger_events holds of one aggregate from base on: every
// version ≤ base is there, and above base exactly the versions in have.
type tail struct {
	base int64
	have map[int64]bool
}

// contiguous reports whether the tail is base+1..w without a hole, so that
// "≤ w present, nothing above" describes it in one number.
func (t *tail) contiguous() (w int64, ok bool) {
	w = t.base
	for ver := range t.have {
		w = max(w, ver)
	}
	return w, int64(len(t.have)) == w-t.base
}

// present returns, for every aggregate of rows, which of its versions
// ledger_events holds. A cached written version answers without a query;
// otherwise the table is asked for every version from the batch's lowest
// one up (no upper bound: a crashed predecessor may have written further).
func (v *View) present(ctx context.Context, rows []eventRow) (map[string]*tail, error) {
	out := map[string]*tail{}
	var ask []string
	for _, r := range rows {
		if !r.known {
			continue
		}
		if tl := out[r.AggregateID]; tl != nil {
			if _, cached := v.written[r.AggregateID]; !cached {
				tl.base = min(tl.base, r.Version-1)
			}
			continue
		}
		if w, cached := v.written[r.AggregateID]; cached {
			out[r.AggregateID] = &tail{base: w, have: map[int64]bool{}}
			continue
		}
		out[r.AggregateID] = &tail{base: r.Version - 1, have: map[int64]bool{}}
		ask = append(ask, r.AggregateID)
	}
	for len(ask) > 0 {
		n := nextChunk(ask, inChunk/2, 48)
		chunk := ask[:n]
		ask = ask[n:]
		conds := make([]string, len(chunk))
		args := make([]any, 0, 2*len(chunk))
		for i, a := range chunk {
			conds[i] = "(aggregate_id = ? AND version > ?)"
			args = append(args, a, uint64(max(out[a].base, 0)))
		}
		q := "SELECT DISTINCT aggregate_id, version FROM " + v.d.q(v.t.events) + " WHERE " + strings.Join(conds, " OR ")
		if err := v.scanVersions(ctx, q, args, out); err != nil {
			return nil, fmt.Errorf("clickhouse: read written versions: %w", err)
		}
	}
	return out, nil
}

func (v *View) scanVersions(ctx context.Context, q string, args []any, out map[string]*tail) error {
	rs, err := v.conn.Query(idQuery(ctx), q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var a string
		var ver uint64
		if err := rs.Scan(&a, &ver); err != nil {
			return err
		}
		if tl := out[a]; tl != nil {
			tl.have[int64(ver)] = true
		}
	}
	return rs.Err()
}

// insertEvents writes rows in INSERTs of at most BatchRows rows, each with a
// new batch (a clickhouse-go batch cannot be reused after Send).
func (v *View) insertEvents(ctx context.Context, rows []eventRow) error {
	q := "INSERT INTO " + v.d.q(v.t.events) + " (" + strings.Join(eventColumns, ", ") + ")"
	for len(rows) > 0 {
		n := min(len(rows), v.opts.BatchRows)
		chunk := rows[:n]
		rows = rows[n:]
		b, err := v.conn.PrepareBatch(ctx, q)
		if err != nil {
			return fmt.Errorf("clickhouse: insert events: %w", err)
		}
		for _, r := range chunk {
			err := b.Append(r.EventID, r.AggregateID, uint64(max(r.Version, 0)), r.Type, r.CommandID, r.CorrelationID, r.Causation,
				r.OccurredAt, r.OccurredAt.UnixMilli(), r.Currency, r.Amount, r.BalanceAfter, r.TransferID,
				r.Counterparty, r.Owner, r.OverdraftLimit, r.Reference, r.Reason, r.Partition, r.Offset)
			if err != nil {
				_ = b.Abort()
				return fmt.Errorf("clickhouse: insert events: append %s/%d: %w", r.AggregateID, r.Version, err)
			}
		}
		if err := ctx.Err(); err != nil {
			// Past the apply's write deadline (see the projector's
			// fencing): another member may own the rows now.
			_ = b.Abort()
			return fmt.Errorf("clickhouse: not written: %w", err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("clickhouse: insert events: %w", err)
		}
	}
	return nil
}

// insertBalances writes one row per changed account, BatchRows per INSERT.
func (v *View) insertBalances(ctx context.Context, states map[string]projection.AccountView) error {
	all := make([]projection.AccountView, 0, len(states))
	for _, st := range states {
		all = append(all, st)
	}
	q := "INSERT INTO " + v.d.q(v.t.balances) + " (" + strings.Join(balanceColumns, ", ") + ")"
	for len(all) > 0 {
		n := min(len(all), v.opts.BatchRows)
		chunk := all[:n]
		all = all[n:]
		b, err := v.conn.PrepareBatch(ctx, q)
		if err != nil {
			return fmt.Errorf("clickhouse: insert balances: %w", err)
		}
		for _, st := range chunk {
			err := b.Append(st.AccountID, st.Owner, st.Currency, st.Balance, st.OverdraftLimit, st.Status,
				uint64(max(st.Version, 0)), st.UpdatedAt, st.UpdatedAt.UnixMilli())
			if err != nil {
				_ = b.Abort()
				return fmt.Errorf("clickhouse: insert balances: append %s: %w", st.AccountID, err)
			}
		}
		if err := ctx.Err(); err != nil {
			// Past the apply's write deadline (see the projector's
			// fencing): another member may own the rows now.
			_ = b.Abort()
			return fmt.Errorf("clickhouse: not written: %w", err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("clickhouse: insert balances: %w", err)
		}
	}
	return nil
}

// Account implements projection.AccountReader, reading with FINAL.
func (v *View) Account(ctx context.Context, id string) (projection.AccountView, bool, error) {
	found, err := v.readAccounts(ctx, "account_id = ?", id)
	if err != nil {
		return projection.AccountView{}, false, err
	}
	a, ok := found[id]
	return a, ok, nil
}

func (v *View) readAccounts(ctx context.Context, where string, args ...any) (map[string]projection.AccountView, error) {
	q := "SELECT account_id, owner, currency, balance, overdraft_limit, status, version, updated_at_ms FROM " +
		v.d.q(v.t.balances) + " FINAL WHERE " + where
	rs, err := v.conn.Query(idQuery(ctx), q, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read accounts: %w", err)
	}
	defer rs.Close()
	out := map[string]projection.AccountView{}
	for rs.Next() {
		var a projection.AccountView
		var ver uint64
		var ms int64
		if err := rs.Scan(&a.AccountID, &a.Owner, &a.Currency, &a.Balance, &a.OverdraftLimit, &a.Status, &ver, &ms); err != nil {
			return nil, fmt.Errorf("clickhouse: read accounts: %w", err)
		}
		a.Version = int64(ver)
		a.UpdatedAt = time.UnixMilli(ms).UTC()
		out[a.AccountID] = a
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read accounts: %w", err)
	}
	return out, nil
}
