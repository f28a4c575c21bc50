package chsink

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Base table names of the live generation. Generation N > 0 appends "_gN".
const (
	EventsTable   = "ledger_events"
	BalancesTable = "account_balances"
	VolumeTable   = "volume_hourly"
	VolumeView    = "volume_hourly_mv"
)

// DefaultZKPath is the ZooKeeper path template of the Replicated engines in
// cluster mode. {db} and {table} are filled in here (ClickHouse 18.16 does
// not expand {database}/{table} macros); {shard} and {replica} are the
// server's own macros.
const DefaultZKPath = "/clickhouse/tables/{shard}/{db}/{table}"

// Options says where the ClickHouse views live and how they are written.
// The zero value (plus a database) is a single server, live generation.
type Options struct {
	// Database qualifies every table name; empty means the connection's
	// default database.
	Database string
	// Generation 0 is the live tables (ledger_events, …); a rebuild writes
	// generation N > 0 (ledger_events_gN, …) and Swap promotes it.
	Generation int
	// BatchRows caps the rows of one INSERT; default 50000.
	BatchRows int
	// Cluster, when set, makes every DDL statement ON CLUSTER and every
	// engine Replicated, on tables named <name>_local on every server,
	// behind Distributed tables with the contract names (ledger_events,
	// account_balances, volume_hourly) that every read and write goes
	// through. Rows are sharded by aggregate (cityHash64 of the account id),
	// so an account's events and balance live on one shard and FINAL and
	// argMax stay exact across shards. Needs Database.
	Cluster string
	// InsertQuorum, with Cluster: the replicas of a shard that must have
	// an INSERT before it succeeds (insert_quorum); 0 and 1 mean none.
	// A quorum keeps rows through the loss of a replica's disk, but an
	// INSERT whose quorum times out is stored without its materialized
	// view's rows (ClickHouse writes the table, waits, fails, and never
	// feeds the view; a retry of the same block is deduplicated, and
	// deduplicated blocks feed no view), so the hourly volume misses those
	// events. Without it, the view replays its recent blocks byte for byte
	// instead (see View), and ClickHouse's block deduplication makes the
	// replay exact.
	InsertQuorum int
	// ZKPath is the Replicated engines' path template; default DefaultZKPath.
	ZKPath string
	// CacheSize bounds the in-process cache of account states; it is
	// emptied when it grows past this. Default 100000.
	CacheSize int
}

var identRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports every problem with o.
func (o Options) Validate() error {
	var errs []error
	if o.Database != "" && !identRE.MatchString(o.Database) {
		errs = append(errs, fmt.Errorf("clickhouse database %q: want an identifier", o.Database))
	}
	if o.Cluster != "" && !identRE.MatchString(o.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse cluster %q: want an identifier", o.Cluster))
	}
	if o.Cluster != "" && o.Database == "" {
		errs = append(errs, fmt.Errorf("clickhouse cluster %s: needs a database (the Distributed tables name it)", o.Cluster))
	}
	if o.InsertQuorum < 0 {
		errs = append(errs, fmt.Errorf("insert quorum %d: must be ≥ 0", o.InsertQuorum))
	}
	if o.Generation < 0 {
		errs = append(errs, fmt.Errorf("generation %d: must be ≥ 0", o.Generation))
	}
	if o.BatchRows < 0 {
		errs = append(errs, fmt.Errorf("batch rows %d: must be ≥ 0", o.BatchRows))
	}
	if strings.ContainsAny(o.ZKPath, "'\\") {
		errs = append(errs, fmt.Errorf("zk path %q: must not contain quotes or backslashes", o.ZKPath))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.BatchRows == 0 {
		o.BatchRows = 50000
	}
	if o.ZKPath == "" {
		o.ZKPath = DefaultZKPath
	}
	if o.CacheSize == 0 {
		o.CacheSize = 100000
	}
	if o.InsertQuorum == 0 {
		o.InsertQuorum = 1
	}
	return o
}

// writeSettings are the settings of every INSERT: on a cluster, through the
// Distributed tables synchronously (the INSERT returns once every shard
// has its rows, so a projector commits offsets only for stored events) and
// with the insert quorum.
func (o Options) writeSettings() clickhouse.Settings {
	if o.Cluster == "" {
		return nil
	}
	set := clickhouse.Settings{"insert_distributed_sync": 1}
	if q := o.withDefaults().InsertQuorum; q > 1 {
		// A replica down makes the INSERT fail after this long (the
		// default is 10 minutes), and the projector retries.
		set["insert_quorum"] = q
		set["insert_quorum_timeout"] = 15000
	}
	return set
}

// writeContext is ctx with the write settings.
func (o Options) writeContext(ctx context.Context) context.Context {
	if set := o.writeSettings(); set != nil {
		return clickhouse.Context(ctx, clickhouse.WithSettings(set))
	}
	return ctx
}

// tables are the (unqualified) names of one generation.
type tables struct {
	events, balances, volume, volumeMV string
}

func tablesOf(gen int) tables {
	sfx := ""
	if gen > 0 {
		sfx = "_g" + strconv.Itoa(gen)
	}
	return tables{EventsTable + sfx, BalancesTable + sfx, VolumeTable + sfx, VolumeView + sfx}
}

// TableNames returns the events, balances and hourly-volume table names of
// generation gen, unqualified.
func TableNames(gen int) (events, balances, volume string) {
	t := tablesOf(gen)
	return t.events, t.balances, t.volume
}

// ddl builds statements for one set of options; every identifier in it comes
// from validated options or constants.
type ddl struct{ o Options }

func (d ddl) q(name string) string {
	if d.o.Database == "" {
		return name
	}
	return d.o.Database + "." + name
}

// local is the name of the table on each server that holds the rows of
// name: on a cluster the Replicated table behind the Distributed one.
func (d ddl) local(name string) string {
	if d.o.Cluster == "" {
		return name
	}
	return name + "_local"
}

// create is the DDL of table name with columns cols (the body between the
// parentheses) and ENGINE = kind(args) plus tail (PARTITION BY, ORDER BY).
// On a cluster: the Replicated table name_local on every server, then the
// Distributed table name over it, sharded by shardKey.
func (d ddl) create(name, cols, kind, args, tail, shardKey string) []string {
	local := d.local(name)
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + d.q(local) + d.onCluster() + " (\n" + cols + "\n) ENGINE = " +
		d.engine(kind, args, local) + "\n" + tail}
	if d.o.Cluster != "" {
		stmts = append(stmts, "CREATE TABLE IF NOT EXISTS "+d.q(name)+d.onCluster()+" AS "+d.q(local)+
			"\nENGINE = Distributed("+d.o.Cluster+", "+d.o.Database+", "+local+", "+shardKey+")")
	}
	return stmts
}

func (d ddl) onCluster() string {
	if d.o.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + d.o.Cluster
}

// engine returns the ENGINE clause; kind is e.g. "ReplacingMergeTree" and
// args its arguments ("version").
func (d ddl) engine(kind, args, table string) string {
	if d.o.Cluster == "" {
		return kind + "(" + args + ")"
	}
	a := "'" + d.zkPath(table, "{shard}") + "', '{replica}'"
	if args != "" {
		a += ", " + args
	}
	return "Replicated" + kind + "(" + a + ")"
}

// zkPath is the ZooKeeper path of the Replicated table called table: the
// ZKPath template with {db} and {table} filled in and {shard} replaced by
// shard ("{shard}" keeps the server's macro; a fixed name makes one path
// for a table every server replicates).
func (d ddl) zkPath(table, shard string) string {
	db := d.o.Database
	if db == "" {
		db = "default"
	}
	return strings.NewReplacer("{shard}", shard, "{db}", db, "{table}", table).Replace(d.o.withDefaults().ZKPath)
}

// eventColumns are ledger_events' columns in INSERT order.
var eventColumns = []string{
	"event_id", "aggregate_id", "version", "type", "command_id", "correlation_id", "causation_id",
	"occurred_at", "occurred_at_ms", "currency", "amount", "balance_after", "transfer_id",
	"counterparty", "owner", "overdraft_limit", "reference", "reason", "kafka_partition", "kafka_offset", "inserted_at",
}

var balanceColumns = []string{
	"account_id", "owner", "currency", "balance", "overdraft_limit", "status", "version", "updated_at", "updated_at_ms",
}

// Schema returns the DDL of the generation in o, in the order it must run.
// Every statement is idempotent (IF NOT EXISTS).
//
// The hourly volume is a SummingMergeTree fed by a materialized view over
// ledger_events. A plain summing view counts every inserted row, so a
// redelivered event inserted twice before a merge would be counted twice:
// ReplacingMergeTree deduplicates ledger_events only at merge (or FINAL)
// time, and the view never sees that. This package keeps it exact by never
// inserting an event into ledger_events that is already there: View.Apply
// checks which (aggregate_id, version) pairs exist before inserting (see
// View). Summary reads ledger_events FINAL and is exact regardless; the
// hourly table is the cheap source for dashboards and time series.
func Schema(o Options) []string {
	o = o.withDefaults()
	d := ddl{o}
	t := tablesOf(o.Generation)
	stmts := d.create(t.events, `    event_id String,
    aggregate_id String,
    version UInt64,
    type String,
    command_id String,
    correlation_id String,
    causation_id String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    currency String,
    amount Int64,
    balance_after Int64,
    transfer_id String,
    counterparty String,
    owner String,
    overdraft_limit Int64,
    reference String,
    reason String,
    kafka_partition Int32,
    kafka_offset Int64,
    inserted_at DateTime('UTC') DEFAULT now()`, "ReplacingMergeTree", "version", `PARTITION BY toYYYYMM(occurred_at)
ORDER BY (aggregate_id, version)`, "cityHash64(aggregate_id)")
	stmts = append(stmts, d.create(t.balances, `    account_id String,
    owner String,
    currency String,
    balance Int64,
    overdraft_limit Int64,
    status String,
    version UInt64,
    updated_at DateTime('UTC'),
    updated_at_ms Int64`, "ReplacingMergeTree", "version", "ORDER BY account_id", "cityHash64(account_id)")...)
	stmts = append(stmts, d.volumeTable(t.volume)...)
	return append(stmts, d.volumeView(t))
}

// volumeSums are the columns the hourly SummingMergeTree sums.
//
// volume and net are Int64 and wrap past 2^63 minor units in one hour (they
// stay for dashboards written against them). The exact figures are the four
// UInt64 columns: inflow = inflow_e9 × 10⁹ + inflow_rest (the sum of the
// positive amounts) and outflow likewise (of the negative ones, as a positive
// number). Every event adds at most MaxAmount/10⁹ to an _e9 column and less
// than 10⁹ to a _rest column, so neither can wrap before 1.8 × 10¹⁰ events
// in one hour, currency and type (TimeSeries refuses to answer past that).
var volumeSums = []string{"events", "volume", "net", "inflow_e9", "inflow_rest", "outflow_e9", "outflow_rest"}

// volumeSelect is the hourly aggregate of ledger events, read from from:
// the materialized view's query and the migration's backfill.
func volumeSelect(from string) string {
	return `SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net,
    toUInt64(sumIf(intDiv(amount, 1000000000), amount > 0)) AS inflow_e9,
    toUInt64(sumIf(amount % 1000000000, amount > 0)) AS inflow_rest,
    toUInt64(sumIf(intDiv(-amount, 1000000000), amount < 0)) AS outflow_e9,
    toUInt64(sumIf((-amount) % 1000000000, amount < 0)) AS outflow_rest
FROM ` + from + `
WHERE amount != 0
GROUP BY currency, hour, type`
}

// volumeTable is the DDL of the hourly volume table called name. On a
// cluster each server's materialized view fills its local table; the
// Distributed table is for reads (its rand() shard key is never used).
func (d ddl) volumeTable(name string) []string {
	return d.create(name, `    currency String,
    hour DateTime('UTC'),
    type String,
    events UInt64,
    volume Int64,
    net Int64,
    inflow_e9 UInt64,
    inflow_rest UInt64,
    outflow_e9 UInt64,
    outflow_rest UInt64`, "SummingMergeTree", "("+strings.Join(volumeSums, ", ")+")", `PARTITION BY toYYYYMM(hour)
ORDER BY (currency, hour, type)`, "rand()")
}

func (d ddl) volumeView(t tables) string {
	return "CREATE MATERIALIZED VIEW IF NOT EXISTS " + d.q(t.volumeMV) + d.onCluster() + " TO " + d.q(d.local(t.volume)) + " AS\n" +
		volumeSelect(d.q(d.local(t.events)))
}

// Migrate creates the tables of the generation in o if they do not exist.
// Running it again changes nothing.
func Migrate(ctx context.Context, conn driver.Conn, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if err := migrateVolume(ctx, conn, o.withDefaults()); err != nil {
		return err
	}
	for _, q := range Schema(o) {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse migrate: %s: %w", firstLine(q), err)
		}
	}
	return nil
}

// migrateVolume brings an hourly volume table created before the exact
// inflow/outflow columns to today's layout. A SummingMergeTree's summed
// columns are fixed when it is created, so the table is rebuilt from
// ledger_events (FINAL: one row per event) rather than altered:
//
//	drop the view → fill <volume>_next → rename <volume> to <volume>_v1 and
//	_next to <volume> → recreate the view → drop <volume>_v1
//
// Each step is safe to run again after a crash. Events inserted into
// ledger_events by another writer while the view is gone are not counted,
// so stop the other ClickHouse projectors for the upgrade (the one that
// migrates writes nothing before Migrate returns). On a cluster it refuses:
// `projector rebuild --view clickhouse` builds the new layout there.
func migrateVolume(ctx context.Context, conn driver.Conn, o Options) error {
	d := ddl{o}
	t := tablesOf(o.Generation)
	next, old := t.volume+"_next", t.volume+"_v1"
	cols, err := columnsOf(ctx, conn, o.Database, t.volume)
	if err != nil {
		return fmt.Errorf("clickhouse migrate: columns of %s: %w", t.volume, err)
	}
	if len(cols) == 0 || cols["inflow_e9"] {
		// Absent (Schema creates it) or already migrated; a crash may
		// have left the previous table behind.
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.q(old)+d.onCluster()); err != nil {
			return fmt.Errorf("clickhouse migrate: drop %s: %w", old, err)
		}
		return nil
	}
	if o.Cluster != "" {
		return fmt.Errorf("clickhouse migrate: %s predates the exact inflow/outflow columns; on a cluster run `projector rebuild --view clickhouse` to build the new layout", t.volume)
	}
	stmts := []string{
		"DROP TABLE IF EXISTS " + d.q(t.volumeMV),
		"DROP TABLE IF EXISTS " + d.q(next),
	}
	stmts = append(stmts, d.volumeTable(next)...)
	stmts = append(stmts,
		"INSERT INTO "+d.q(next)+" (currency, hour, type, "+strings.Join(volumeSums, ", ")+")\n"+
			volumeSelect(d.q(t.events)+" FINAL"),
		"DROP TABLE IF EXISTS "+d.q(old),
		"RENAME TABLE "+d.q(t.volume)+" TO "+d.q(old)+", "+d.q(next)+" TO "+d.q(t.volume),
		d.volumeView(t),
		"DROP TABLE "+d.q(old),
	)
	for _, q := range stmts {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse migrate %s: %s: %w", t.volume, firstLine(q), err)
		}
	}
	return nil
}

// columnsOf returns the column names of table in database db ("" =
// current); none when the table does not exist.
func columnsOf(ctx context.Context, conn driver.Conn, db, table string) (map[string]bool, error) {
	return systemNames(ctx, conn, "columns", db, "table = ?", table)
}

// systemNames returns the names in system.<table> of database db ("" =
// the connection's) whose rows match cond.
func systemNames(ctx context.Context, conn driver.Conn, table, db, cond string, args ...any) (map[string]bool, error) {
	dbExpr := "currentDatabase()"
	if db != "" {
		dbExpr = "?"
		args = append([]any{db}, args...)
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system."+table+" WHERE database = "+dbExpr+" AND "+cond, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// SwapStatements returns what Swap runs to promote generation gen to the
// live names, given whether live tables exist. o.Generation is ignored.
//
// The hourly view is dropped and recreated around the RENAME because a
// materialized view names its source table and older servers do not follow
// a rename; events inserted into ledger_events in that short window are not
// counted in volume_hourly (Summary, which reads ledger_events, is exact).
func SwapStatements(o Options, gen int, liveExists bool) []string {
	o = o.withDefaults()
	o.Generation = 0
	d := ddl{o}
	on := d.onCluster()
	live, next := tablesOf(0), tablesOf(gen)
	// On a cluster the Replicated tables are renamed; the live Distributed
	// tables name them and read the new ones from the next query on.
	pairs := [][2]string{{d.local(live.events), d.local(next.events)}, {d.local(live.balances), d.local(next.balances)}, {d.local(live.volume), d.local(next.volume)}}
	stmts := []string{
		"DROP TABLE IF EXISTS " + d.q(live.volumeMV) + on,
		"DROP TABLE IF EXISTS " + d.q(next.volumeMV) + on,
	}
	for _, p := range pairs {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+d.q(p[0]+"_old")+on)
	}
	var renames []string
	for _, p := range pairs {
		if liveExists {
			renames = append(renames, d.q(p[0])+" TO "+d.q(p[0]+"_old"))
		}
		renames = append(renames, d.q(p[1])+" TO "+d.q(p[0]))
	}
	stmts = append(stmts, "RENAME TABLE "+strings.Join(renames, ", ")+on)
	if o.Cluster == "" {
		stmts = append(stmts, d.volumeView(live))
	} else {
		// The live Distributed tables (made here if there were no live
		// tables) and the view; generation gen's Distributed tables now
		// name nothing.
		stmts = append(stmts, Schema(o)...)
		for _, n := range []string{next.events, next.balances, next.volume} {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+d.q(n)+on)
		}
	}
	for _, p := range pairs {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+d.q(p[0]+"_old")+on)
	}
	return stmts
}

// Swap makes generation gen (> 0) the live tables with RENAME TABLE (what
// ClickHouse 18.16 has; EXCHANGE TABLES is newer) and drops the previous
// live tables. Readers and writers of generation 0 see the new tables from
// the next query on; a View of generation 0 caches account states, so
// create a new one after a swap.
func Swap(ctx context.Context, conn driver.Conn, o Options, gen int) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if gen <= 0 {
		return fmt.Errorf("clickhouse swap: generation %d: must be > 0", gen)
	}
	missing, nLive, err := swapState(ctx, conn, o, gen)
	if err != nil {
		return fmt.Errorf("clickhouse swap: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("clickhouse swap: table %s of generation %d does not exist", missing[0], gen)
	}
	liveExists := nLive == 3
	if !liveExists && nLive > 0 {
		return fmt.Errorf("clickhouse swap: live tables only partly exist; refusing to rename over them")
	}
	for _, q := range SwapStatements(o, gen, liveExists) {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse swap: %s: %w", firstLine(q), err)
		}
	}
	return nil
}

// Swapped reports whether Swap(gen) renamed generation gen to the live
// names: false while gen's tables all exist under their own names, true
// once none does and the live tables exist. Anything in between (a rename
// cut short by a server crash) is an error: a person must look at it.
func Swapped(ctx context.Context, conn driver.Conn, o Options, gen int) (bool, error) {
	if gen <= 0 {
		return false, fmt.Errorf("clickhouse: generation %d: must be > 0", gen)
	}
	missing, nLive, err := swapState(ctx, conn, o, gen)
	if err != nil {
		return false, fmt.Errorf("clickhouse: %w", err)
	}
	nNext := 3 - len(missing)
	switch {
	case nNext == 3:
		return false, nil
	case nNext == 0 && nLive == 3:
		return true, nil
	}
	return false, fmt.Errorf("clickhouse: generation %d is partly renamed to the live names (%d of 3 tables left, %d of 3 live tables): rename by hand, then record the generation in force", gen, nNext, nLive)
}

// swapState reads which of the tables that Swap(gen) renames exist: the
// names of gen's tables that do not, and how many of the 3 live tables do.
func swapState(ctx context.Context, conn driver.Conn, o Options, gen int) (missing []string, nLive int, err error) {
	d := ddl{o}
	l, n := tablesOf(0), tablesOf(gen)
	// The tables Swap renames: on a cluster, the Replicated ones.
	live := tables{events: d.local(l.events), balances: d.local(l.balances), volume: d.local(l.volume)}
	next := tables{events: d.local(n.events), balances: d.local(n.balances), volume: d.local(n.volume)}
	have, err := existing(ctx, conn, o.Database, live.events, live.balances, live.volume, next.events, next.balances, next.volume)
	if err != nil {
		return nil, 0, err
	}
	for _, n := range []string{next.events, next.balances, next.volume} {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	for _, n := range []string{live.events, live.balances, live.volume} {
		if have[n] {
			nLive++
		}
	}
	return missing, nLive, nil
}

// existing reports which of names exist in database db ("" = current).
func existing(ctx context.Context, conn driver.Conn, db string, names ...string) (map[string]bool, error) {
	set := make([]any, len(names))
	for i, n := range names {
		set[i] = n
	}
	return systemNames(ctx, conn, "tables", db, "name IN ?", groupSet(set))
}
