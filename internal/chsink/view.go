package chsink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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
// Apply is idempotent per (aggregate, version) without relying on merges,
// and in the steady state it reads nothing before it inserts:
//   - Every row of ledger_events carries the position of its record in the
//     events topic (kafka_partition, kafka_offset). The view remembers, per
//     partition, up to which offset the table holds every event; it learns
//     that once, with one query, when it starts, after Reset (an
//     assignment) and after a failed Apply: the offsets below the first one
//     it is given were committed by the group, so written, and the query
//     returns which ones above it a crashed predecessor wrote. An event
//     past that point is new and inserted without a lookup; one the table
//     holds is skipped. One at or below it (a redelivery after a failed
//     offset commit, or events given out of log order) is looked up by
//     version, as every event was before: redelivery inserts nothing, and
//     the summing materialized view over ledger_events stays exact. Events
//     after a version gap are still recorded in ledger_events.
//   - Account states are folded with projection.NextAccount from the state
//     stored in account_balances (read with FINAL the first time an account
//     is seen, then cached; an account whose opening is inserted now has
//     none): an event applies only if its version is the stored version + 1;
//     older ones are skipped, and after a gap nothing more applies to that
//     account until the gap is filled.
//   - Values that are not ledger events are skipped (nothing is written).
//
// Positions are those of the events topic's records; events must come with
// them (projection.Event.Partition and Offset), and in log order per
// partition as the projector gives them, for the lookup-free path.
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
	erased   map[string]bool                   // accounts Redact blanked: their rows are written without an owner
	parts    map[int32]*position               // what ledger_events holds of each partition

	// On a cluster: the last INSERTs of events, row for row, by the
	// identity of each event in them (see sentBlocks).
	sent *sentBlocks
}

var _ projection.View = (*View)(nil)

// NewView returns a view writing the generation in opts. It does not create
// tables; run Migrate first.
func NewView(conn driver.Conn, opts Options) (*View, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	v := &View{
		conn: conn, opts: opts, d: ddl{opts}, t: tablesOf(opts.Generation),
		accounts: map[string]projection.AccountView{},
		erased:   map[string]bool{},
		parts:    map[int32]*position{},
	}
	if opts.Cluster != "" {
		v.sent = newSentBlocks(replayRows)
	}
	return v, nil
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
	InsertedAt                          time.Time // set when first inserted, kept in a replay
	money                               bool      // carries balance_after
	known                               bool      // an event type of this package
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
	if len(v.accounts) > v.opts.CacheSize {
		v.accounts = map[string]projection.AccountView{}
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
	fail := func(err error) error {
		v.forget(aggs, rows)
		return err
	}
	if err := v.locate(ctx, rows); err != nil {
		return fail(err)
	}
	// Which rows are new: a position past what the partition is known to
	// hold is; one the store holds is not; one at or below the known end
	// (a redelivery, or events given out of log order) is looked up by
	// version.
	fresh := make([]bool, len(rows))
	var unsure []eventRow
	for i, r := range rows {
		if !r.known {
			continue
		}
		switch pos := v.parts[r.Partition]; {
		case pos.holds(r):
		case r.Offset > pos.through:
			fresh[i] = true
		default:
			unsure = append(unsure, r)
		}
	}
	tails, err := v.present(ctx, unsure)
	if err != nil {
		return fail(err)
	}
	// The stored state of an account is needed unless its first event here
	// is its opening, written now for the first time: then there is none
	// (balances are written after the events they fold).
	var load []string
	first := map[string]bool{}
	for i, r := range rows {
		if !r.known || first[r.AggregateID] {
			continue
		}
		first[r.AggregateID] = true
		if _, cached := v.accounts[r.AggregateID]; cached {
			continue
		}
		if r.Version == 1 && fresh[i] && !batch[i].Redacted { // an erasure's copy follows its original
			v.accounts[r.AggregateID] = projection.AccountView{}
			continue
		}
		load = append(load, r.AggregateID)
	}
	if err := v.load(ctx, load); err != nil {
		return fail(err)
	}

	states := map[string]projection.AccountView{}
	inserted := map[string]map[int64]bool{} // within the batch: a duplicate is written once
	var inserts []eventRow
	for i, r := range rows {
		if !r.known {
			continue
		}
		before := v.accounts[r.AggregateID]
		st, ok := states[r.AggregateID]
		if !ok {
			st = before
		}
		if r.Currency == "" {
			r.Currency = st.Currency // AccountClosed carries none
		}
		if next, applied := projection.NextAccount(st, st.Version > 0, batch[i]); applied {
			next.UpdatedAt = next.UpdatedAt.Truncate(time.Millisecond)
			states[r.AggregateID] = next
		}
		write := fresh[i]
		if tl := tails[r.AggregateID]; !write && tl != nil {
			write = r.Version > tl.base && !tl.have[r.Version]
		}
		// The stored balance folds every event up to its version, and
		// balances are written after events: those are all stored.
		if !write || r.Version <= before.Version || inserted[r.AggregateID][r.Version] {
			continue
		}
		if inserted[r.AggregateID] == nil {
			inserted[r.AggregateID] = map[int64]bool{}
		}
		inserted[r.AggregateID][r.Version] = true
		inserts = append(inserts, r)
	}
	if err := v.insertEvents(ctx, inserts); err != nil {
		return fail(err)
	}
	if err := v.insertBalances(ctx, states); err != nil {
		return fail(err)
	}
	for _, r := range rows {
		pos := v.parts[r.Partition]
		if r.Offset > pos.through {
			pos.through = r.Offset
		}
	}
	for _, pos := range v.parts {
		for off := range pos.above {
			if off <= pos.through {
				delete(pos.above, off)
			}
		}
	}
	for a, st := range states {
		v.accounts[a] = st
	}
	return nil
}

// revalidate drops the cached state of aggregate a if first, the
// aggregate's first version in a batch, does not follow it: another
// instance may have written the aggregate meanwhile (the partition moved
// away and back), so the store is asked again rather than a gap assumed.
func (v *View) revalidate(a string, first int64) {
	if st, ok := v.accounts[a]; ok && first > st.Version+1 {
		delete(v.accounts, a)
	}
}

// Reset empties what the view remembers of the store, so that it is read
// again: call it when partitions are assigned, as another instance may have
// written the tables while this one did not own them. A failed Apply does
// the same for what its batch touched.
func (v *View) Reset() {
	v.accounts, v.parts = map[string]projection.AccountView{}, map[int32]*position{}
}

// forget drops what the view knows of the aggregates and partitions of a
// failed batch: it is unknown what reached the store.
func (v *View) forget(aggs []string, rows []eventRow) {
	for _, a := range aggs {
		delete(v.accounts, a)
	}
	for _, r := range rows {
		delete(v.parts, r.Partition)
	}
}

// position is what ledger_events holds of one partition of the events
// topic: every event at an offset ≤ through, and above it exactly the
// offsets in above (a crashed predecessor's writes it did not commit),
// each with the identity of the event stored there. An offset holding
// another event than the one given (the topic was deleted and made again,
// its offsets restarting, while the tables stayed) is not taken for it.
type position struct {
	through int64
	above   map[int64]string
}

// holds reports whether the partition's stored events above through
// include r itself at its offset.
func (p *position) holds(r eventRow) bool {
	id, ok := p.above[r.Offset]
	return ok && id == identity(r.AggregateID, r.Version)
}

// identity names an event by aggregate and version.
func identity(aggregate string, version int64) string {
	return aggregate + "\x00" + strconv.FormatInt(version, 10)
}

// locate learns, for every partition of rows the view has no position of,
// which events ledger_events holds from the partition's lowest offset in
// rows on: the offsets below it were committed by the consumer group, so
// applied. One query for all of them; it runs when a view starts, after
// Reset (an assignment) and after a failed Apply, not per batch.
func (v *View) locate(ctx context.Context, rows []eventRow) error {
	from := map[int32]int64{}
	for _, r := range rows {
		if _, ok := v.parts[r.Partition]; ok {
			continue
		}
		if f, ok := from[r.Partition]; !ok || r.Offset < f {
			from[r.Partition] = r.Offset
		}
	}
	if len(from) == 0 {
		return nil
	}
	conds := make([]string, 0, len(from))
	args := make([]any, 0, 2*len(from))
	found := map[int32]*position{}
	for p, f := range from {
		conds = append(conds, "(kafka_partition = ? AND kafka_offset >= ?)")
		args = append(args, p, f)
		found[p] = &position{through: f - 1, above: map[int64]string{}}
	}
	q := "SELECT kafka_partition, kafka_offset, aggregate_id, version FROM " + v.d.q(v.t.events) + " WHERE " + strings.Join(conds, " OR ")
	rs, err := v.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("clickhouse: read written positions: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			p   int32
			off int64
			agg string
			ver uint64
		)
		if err := rs.Scan(&p, &off, &agg, &ver); err != nil {
			return fmt.Errorf("clickhouse: read written positions: %w", err)
		}
		if pos := found[p]; pos != nil {
			pos.above[off] = identity(agg, int64(ver))
		}
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("clickhouse: read written positions: %w", err)
	}
	for p, pos := range found {
		v.parts[p] = pos
	}
	return nil
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
		found, err := v.readAccounts(idQuery(ctx), "account_id IN ?", groupSet(set))
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

// present returns, for every aggregate of rows, which of its versions
// ledger_events holds: the table is asked for every version from the
// aggregate's lowest one in rows up (no upper bound: a crashed predecessor
// may have written further).
func (v *View) present(ctx context.Context, rows []eventRow) (map[string]*tail, error) {
	out := map[string]*tail{}
	var ask []string
	for _, r := range rows {
		if tl := out[r.AggregateID]; tl != nil {
			tl.base = min(tl.base, r.Version-1)
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
// new batch (a clickhouse-go batch cannot be reused after Send). On a
// cluster, a row the view sent before in one of its recent INSERTs is sent
// again as that whole INSERT, unchanged (see sentBlocks); the others go in
// new INSERTs, remembered before they are sent.
func (v *View) insertEvents(ctx context.Context, rows []eventRow) error {
	fresh := rows
	if v.sent != nil {
		var replays []*sentBlock
		replays, fresh = v.sent.split(rows)
		for _, b := range replays {
			if err := v.sendEvents(ctx, b.rows); err != nil {
				return err
			}
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range fresh {
		fresh[i].InsertedAt = now
	}
	for len(fresh) > 0 {
		chunk := fresh[:min(len(fresh), v.opts.BatchRows)]
		fresh = fresh[len(chunk):]
		if v.sent != nil {
			chunk = v.sent.remember(chunk).rows
		}
		if err := v.sendEvents(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

// sendEvents is one INSERT of rows.
func (v *View) sendEvents(ctx context.Context, rows []eventRow) error {
	q := "INSERT INTO " + v.d.q(v.t.events) + " (" + strings.Join(eventColumns, ", ") + ")"
	b, err := v.conn.PrepareBatch(v.opts.writeContext(ctx), q)
	if err != nil {
		return fmt.Errorf("clickhouse: insert events: %w", err)
	}
	for _, r := range rows {
		err := b.Append(r.EventID, r.AggregateID, uint64(max(r.Version, 0)), r.Type, r.CommandID, r.CorrelationID, r.Causation,
			r.OccurredAt, r.OccurredAt.UnixMilli(), r.Currency, r.Amount, r.BalanceAfter, r.TransferID,
			r.Counterparty, r.Owner, r.OverdraftLimit, r.Reference, r.Reason, r.Partition, r.Offset, r.InsertedAt)
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
	return nil
}

// replayRows bounds the rows sentBlocks keeps: far more than a replica
// can fall behind in the second or so before it fetches a part, at about
// 300 bytes a row.
const replayRows = 50000

// sentBlocks are the view's last INSERTs of events on a cluster, row for
// row, including inserted_at. ClickHouse's Replicated tables drop an
// INSERT whose block equals one of the shard's last 100 (the hashes are
// kept in ZooKeeper, for every replica), and a dropped block feeds no
// materialized view. So when the view must insert an event again (its
// INSERT failed, or the replica it now reads lacks a part the replica it
// wrote to acknowledged and then died with), it sends that whole INSERT
// again, unchanged: each shard stores what it did not have, once, and the
// hourly volume counts each event once. An event not remembered (after a
// restart, or evicted) is inserted in a new block; in the rare case that a
// dead replica still holds it, it is then stored twice (FINAL and argMax
// read it once, the hourly volume counts it twice).
type sentBlocks struct {
	max    int
	total  int
	blocks []*sentBlock
	by     map[string]*sentBlock // identity → the block that sent it last
}

type sentBlock struct{ rows []eventRow }

func newSentBlocks(maxRows int) *sentBlocks {
	return &sentBlocks{max: maxRows, by: map[string]*sentBlock{}}
}

// split returns the remembered blocks holding any of rows (each once, in
// the order they were sent) and the rows none holds.
func (s *sentBlocks) split(rows []eventRow) (replays []*sentBlock, fresh []eventRow) {
	again := map[*sentBlock]bool{}
	for _, r := range rows {
		if b := s.by[identity(r.AggregateID, r.Version)]; b != nil {
			again[b] = true
		} else {
			fresh = append(fresh, r)
		}
	}
	for _, b := range s.blocks {
		if again[b] {
			replays = append(replays, b)
		}
	}
	return replays, fresh
}

// remember keeps a copy of rows as a block about to be sent, evicting the
// oldest blocks past max rows (the newest always stays).
func (s *sentBlocks) remember(rows []eventRow) *sentBlock {
	b := &sentBlock{rows: slices.Clone(rows)}
	s.blocks = append(s.blocks, b)
	s.total += len(rows)
	for _, r := range b.rows {
		s.by[identity(r.AggregateID, r.Version)] = b
	}
	for len(s.blocks) > 1 && s.total > s.max {
		old := s.blocks[0]
		s.blocks = s.blocks[1:]
		s.total -= len(old.rows)
		for _, r := range old.rows {
			if k := identity(r.AggregateID, r.Version); s.by[k] == old {
				delete(s.by, k)
			}
		}
	}
	return b
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
		b, err := v.conn.PrepareBatch(v.opts.writeContext(ctx), q)
		if err != nil {
			return fmt.Errorf("clickhouse: insert balances: %w", err)
		}
		for _, st := range chunk {
			if v.erased[st.AccountID] {
				// Its state may have been read back before the
				// mutation that blanks it was done.
				st.Owner = ""
			}
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

// Account implements projection.AccountReader, reading with FINAL. It
// changes no setting, so a readonly=1 user (the query API's) may call it;
// an id longer than the server's max_query_size allows needs that user's
// profile to raise it (the local stack's does).
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
	rs, err := v.conn.Query(ctx, q, args...)
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

// RawInsert writes events as rows of ledger_events in INSERTs of BatchRows
// rows, with no check and no balances: what a bare batch insert into the
// same table (and its materialized view) costs, the ceiling that
// BenchmarkProjection compares Apply with. Not idempotent; not for use on
// live tables.
func (v *View) RawInsert(ctx context.Context, events []projection.Event) error {
	rows := make([]eventRow, 0, len(events))
	for _, e := range events {
		if r := rowOf(e); r.known {
			rows = append(rows, r)
		}
	}
	return v.insertEvents(ctx, rows)
}
