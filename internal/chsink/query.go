package chsink

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", projection.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// span is a period [from, to) as query arguments: epoch milliseconds for
// the exact bound and whole seconds (covering it) for occurred_at, which
// lets ClickHouse skip month partitions. A zero time is unbounded.
type span struct {
	loMs, hiMs   int64
	loSec, hiSec int64
}

func spanOf(from, to time.Time) span {
	s := span{loMs: -1 << 62, hiMs: 1 << 62, loSec: 0, hiSec: math.MaxUint32}
	if !from.IsZero() {
		s.loMs = from.UnixMilli()
		s.loSec = min(max(from.Unix(), 0), math.MaxUint32)
	}
	if !to.IsZero() {
		s.hiMs = to.UnixMilli()
		s.hiSec = min(max(to.Unix(), 0), math.MaxUint32)
	}
	return s
}

// where is the condition that matches span s; args go with it in this order.
const spanWhere = "occurred_at >= toDateTime(?) AND occurred_at <= toDateTime(?) AND occurred_at_ms >= ? AND occurred_at_ms < ?"

func (s span) args() []any { return []any{s.loSec, s.hiSec, s.loMs, s.hiMs} }

// History returns the account's events with from ≤ occurred_at < to (zero
// times are unbounded) in version order, at most limit (1..MaxLimit; 0 means
// 100) after cursor. next is the cursor of the following page, "" after the
// last one. Pages are keyed by version, so paging while events arrive
// neither repeats nor skips an event.
func (v *View) History(ctx context.Context, accountID string, from, to time.Time, cursor string, limit int) ([]projection.EventRow, string, error) {
	if limit == 0 {
		limit = 100
	}
	if limit < 0 || limit > projection.MaxLimit {
		return nil, "", invalid("limit %d: want 1..%d", limit, projection.MaxLimit)
	}
	var after uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 63)
		if err != nil {
			return nil, "", invalid("cursor %q", cursor)
		}
		after = n
	}
	sp := spanOf(from, to)
	q := `SELECT event_id, aggregate_id, version, type, command_id, correlation_id, causation_id, occurred_at_ms,
    currency, amount, balance_after, transfer_id, counterparty, reference, reason
FROM ` + v.d.q(v.t.events) + ` FINAL
WHERE aggregate_id = ? AND version > ? AND ` + spanWhere + `
ORDER BY version
LIMIT ?`
	args := append(append([]any{accountID, after}, sp.args()...), limit+1)
	rs, err := v.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("clickhouse: history: %w", err)
	}
	defer rs.Close()
	var out []projection.EventRow
	for rs.Next() {
		var r projection.EventRow
		var ver uint64
		var ms int64
		if err := rs.Scan(&r.EventID, &r.AccountID, &ver, &r.Type, &r.CommandID, &r.CorrelationID, &r.CausationID, &ms,
			&r.Currency, &r.Amount, &r.BalanceAfter, &r.TransferID, &r.Counterparty, &r.Reference, &r.Reason); err != nil {
			return nil, "", fmt.Errorf("clickhouse: history: %w", err)
		}
		r.Version = int64(ver)
		r.OccurredAt = time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, "", fmt.Errorf("clickhouse: history: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(out[limit-1].Version, 10)
	}
	return out, next, nil
}

// BalanceAt returns the account's balance and version after the last event
// that occurred at or before ts; ok is false if there is none. It uses
// argMax over version, which is exact without FINAL because duplicate rows
// of one (aggregate_id, version) are identical.
func (v *View) BalanceAt(ctx context.Context, accountID string, ts time.Time) (balance, version int64, ok bool, err error) {
	q := "SELECT argMax(balance_after, version), max(version) FROM " + v.d.q(v.t.events) +
		" WHERE aggregate_id = ? AND occurred_at <= toDateTime(?) AND occurred_at_ms <= ?"
	var ver uint64
	sec := min(max(ts.Unix(), 0), math.MaxUint32)
	if err := v.conn.QueryRow(ctx, q, accountID, sec, ts.UnixMilli()).Scan(&balance, &ver); err != nil {
		return 0, 0, false, fmt.Errorf("clickhouse: balance at: %w", err)
	}
	if ver == 0 {
		return 0, 0, false, nil
	}
	return balance, int64(ver), true, nil
}

// Summary returns per-currency totals of the events with from ≤ occurred_at
// < to (zero times are unbounded), sorted by currency. It reads
// ledger_events FINAL, so it is exact even while duplicates await a merge.
func (v *View) Summary(ctx context.Context, from, to time.Time) ([]projection.CurrencySummary, error) {
	// Each money sum is taken in two parts, whole billions and the rest,
	// which cannot overflow an Int64 (ClickHouse's sum would wrap silently),
	// and joined here, where an overflow of the total is an error.
	split := func(typ string) string {
		return "sumIf(intDiv(amount, 1000000000), type = '" + typ + "'), sumIf(amount % 1000000000, type = '" + typ + "')"
	}
	q := `SELECT currency, ` + split("FundsDeposited") + `, ` + split("FundsWithdrawn") + `, ` + split("TransferDebited") + `,
    ` + split("TransferCredited") + `, ` + split("TransferRefunded") + `,
    countIf(type = 'FundsDeposited'), countIf(type = 'FundsWithdrawn'), countIf(type = 'TransferDebited'),
    countIf(type = 'TransferCredited'), countIf(type = 'TransferRefunded'), count()
FROM ` + v.d.q(v.t.events) + ` FINAL
WHERE ` + spanWhere + ` AND currency != ''
GROUP BY currency
ORDER BY currency`
	rs, err := v.conn.Query(ctx, q, spanOf(from, to).args()...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: summary: %w", err)
	}
	defer rs.Close()
	var out []projection.CurrencySummary
	for rs.Next() {
		var s projection.CurrencySummary
		var c [6]uint64
		var m [10]int64
		if err := rs.Scan(&s.Currency, &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &m[6], &m[7], &m[8], &m[9],
			&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]); err != nil {
			return nil, fmt.Errorf("clickhouse: summary: %w", err)
		}
		var errs []error
		join := func(name string, sign, hi, lo int64) int64 {
			v, err := joinSum(hi, lo, sign)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", s.Currency, name, err))
			}
			return v
		}
		s.Deposits = join("deposits", 1, m[0], m[1])
		s.Withdrawals = join("withdrawals", -1, m[2], m[3])
		s.Transfers = join("transfers", -1, m[4], m[5])
		s.TransfersCredited = join("transfers_credited", 1, m[6], m[7])
		s.TransfersRefunded = join("transfers_refunded", 1, m[8], m[9])
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		s.DepositCount, s.WithdrawalCount, s.TransferCount = int64(c[0]), int64(c[1]), int64(c[2])
		s.CreditedCount, s.RefundedCount, s.Events = int64(c[3]), int64(c[4]), int64(c[5])
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: summary: %w", err)
	}
	return out, nil
}

// joinParts returns e9 × 10⁹ + rest, in e9: a sum taken in two parts so
// that ClickHouse's integer sums cannot wrap.
func joinParts(e9, rest *big.Int) *big.Int {
	return e9.Add(e9.Mul(e9, big.NewInt(1_000_000_000)), rest)
}

// joinSum returns sign × (hi × 10⁹ + lo), or projection.ErrOverflow when it does not
// fit an int64.
func joinSum(hi, lo, sign int64) (int64, error) {
	v := joinParts(big.NewInt(hi), big.NewInt(lo))
	v.Mul(v, big.NewInt(sign))
	if !v.IsInt64() {
		return 0, projection.ErrOverflow
	}
	return v.Int64(), nil
}

// metric is what one metric of TimeSeries sums over volume_hourly: the
// rows of one event type (or all) and which part of their money.
type metric struct {
	typ  string // event type; "" = every type
	kind int    // volumeMetric, netMetric or countMetric
}

const (
	volumeMetric = iota // inflow + outflow
	netMetric           // inflow − outflow
	countMetric         // events
)

// metrics maps a metric name to what it sums. The SQL is built from this
// table, never from the caller.
var metrics = map[string]metric{
	"deposits":           {"FundsDeposited", volumeMetric},
	"withdrawals":        {"FundsWithdrawn", volumeMetric},
	"transfers":          {"TransferDebited", volumeMetric},
	"transfers_credited": {"TransferCredited", volumeMetric},
	"transfers_refunded": {"TransferRefunded", volumeMetric},
	"net":                {"", netMetric},
	"deposit_count":      {"FundsDeposited", countMetric},
	"withdrawal_count":   {"FundsWithdrawn", countMetric},
	"transfer_count":     {"TransferDebited", countMetric},
	"events":             {"", countMetric},
}

// sql is the metric's five aggregates over volume_hourly: inflow_e9,
// inflow_rest, outflow_e9, outflow_rest and events, all UInt64 sums that
// are joined exactly in Go.
func (m metric) sql() string {
	cond := "1"
	if m.typ != "" {
		cond = "type = '" + m.typ + "'"
	}
	var cols []string
	for _, c := range []string{"inflow_e9", "inflow_rest", "outflow_e9", "outflow_rest", "events"} {
		cols = append(cols, "toUInt64(sumIf("+c+", "+cond+"))")
	}
	return strings.Join(cols, ", ")
}

// maxExactEvents is how many events one bucket may sum exactly: past it
// the UInt64 sums of the _rest columns (each < 10⁹ per event) could wrap.
const maxExactEvents = math.MaxUint64 / 1_000_000_000

// value joins the five sums of sql into the metric's value.
func (m metric) value(inE9, inRest, outE9, outRest, events uint64) (int64, error) {
	if m.kind == countMetric {
		if events > math.MaxInt64 {
			return 0, projection.ErrOverflow
		}
		return int64(events), nil
	}
	if events > maxExactEvents {
		return 0, fmt.Errorf("%w (more than %d events in one bucket)", projection.ErrOverflow, uint64(maxExactEvents))
	}
	u := func(v uint64) *big.Int { return new(big.Int).SetUint64(v) }
	in, out := joinParts(u(inE9), u(inRest)), joinParts(u(outE9), u(outRest))
	if m.kind == netMetric {
		in.Sub(in, out)
	} else {
		in.Add(in, out)
	}
	if !in.IsInt64() {
		return 0, projection.ErrOverflow
	}
	return in.Int64(), nil
}

// TimeSeries returns metric (see Metrics) for currency in buckets of
// interval (a whole number of hours, aligned to the Unix epoch, so days
// start at 00:00 UTC) with from ≤ bucket < to, from the hourly volume
// table. from is rounded down to its hour. Buckets without money movement
// are absent. Money metrics need a currency; counts accept "" for all. On
// a cluster it reads ledger_events instead (see below).
func (v *View) TimeSeries(ctx context.Context, metric string, interval time.Duration, from, to time.Time, currency string) ([]projection.Point, error) {
	m, ok := metrics[metric]
	if !ok {
		return nil, invalid("metric %q: want one of %v", metric, projection.Metrics())
	}
	if interval < time.Hour || interval%time.Hour != 0 {
		return nil, invalid("interval %s: want a whole number of hours", interval)
	}
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return nil, invalid("want from < to")
	}
	if currency == "" && m.kind != countMetric {
		return nil, invalid("metric %q needs a currency", metric)
	}
	sec := int64(interval / time.Second)
	start := from.Unix() / 3600 * 3600
	src, args := v.d.q(v.t.volume), []any{sec, sec}
	if v.opts.Cluster != "" {
		// On a cluster the hourly table can miss the events of an INSERT
		// whose server died between storing them and feeding its
		// materialized view (docs/scale-out.md): the same sums are taken
		// from ledger_events FINAL instead, exact at the cost of a scan.
		src = "(" + volumeSelect("(SELECT currency, occurred_at, type, amount FROM "+v.d.q(v.t.events)+
			" FINAL WHERE occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?))") + ")"
		args = append(args, start, to.Unix())
	}
	q := `SELECT toInt64(intDiv(toUInt32(hour), ?) * ?) AS bucket, ` + m.sql() + `
FROM ` + src + `
WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND (? = '' OR currency = ?)
GROUP BY bucket
ORDER BY bucket`
	rs, err := v.conn.Query(ctx, q, append(args, start, to.Unix(), currency, currency)...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: time series: %w", err)
	}
	defer rs.Close()
	var out []projection.Point
	for rs.Next() {
		var bucket int64
		var p projection.Point
		var sums [5]uint64
		if err := rs.Scan(&bucket, &sums[0], &sums[1], &sums[2], &sums[3], &sums[4]); err != nil {
			return nil, fmt.Errorf("clickhouse: time series: %w", err)
		}
		var err error
		if p.Value, err = m.value(sums[0], sums[1], sums[2], sums[3], sums[4]); err != nil {
			return nil, fmt.Errorf("clickhouse: time series %s at %s: %w", metric, time.Unix(bucket, 0).UTC().Format(time.RFC3339), err)
		}
		p.Time = time.Unix(bucket, 0).UTC()
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: time series: %w", err)
	}
	return out, nil
}

// TopAccounts returns up to limit (1..MaxLimit) accounts with the highest
// balance (open accounts, from account_balances FINAL) or volume (sum of
// |amount| over ledger_events FINAL), ties broken by account id. Values of
// different currencies are compared as numbers of minor units.
func (v *View) TopAccounts(ctx context.Context, by string, limit int) ([]projection.AccountRank, error) {
	if limit < 1 || limit > projection.MaxLimit {
		return nil, invalid("limit %d: want 1..%d", limit, projection.MaxLimit)
	}
	var q string
	switch by {
	case "balance":
		q = "SELECT account_id, currency, toInt64(0), balance AS value FROM " + v.d.q(v.t.balances) +
			" FINAL WHERE status = 'open' ORDER BY value DESC, account_id LIMIT ?"
	case "volume":
		// Exact in two parts, as in Summary; ranked by a Float64 sum (ties
		// closer than one part in 10^15 may come in either order).
		q = "SELECT aggregate_id, any(currency), toInt64(sum(intDiv(abs(amount), 1000000000))), toInt64(sum(abs(amount) % 1000000000)) FROM " + v.d.q(v.t.events) +
			" FINAL WHERE amount != 0 GROUP BY aggregate_id ORDER BY sum(toFloat64(abs(amount))) DESC, aggregate_id LIMIT ?"
	default:
		return nil, invalid("by %q: want balance or volume", by)
	}
	rs, err := v.conn.Query(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: top accounts: %w", err)
	}
	defer rs.Close()
	var out []projection.AccountRank
	for rs.Next() {
		var r projection.AccountRank
		var hi, lo int64
		if err := rs.Scan(&r.AccountID, &r.Currency, &hi, &lo); err != nil {
			return nil, fmt.Errorf("clickhouse: top accounts: %w", err)
		}
		var err error
		if r.Value, err = joinSum(hi, lo, 1); err != nil {
			return nil, fmt.Errorf("clickhouse: top accounts: %s: %w", r.AccountID, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: top accounts: %w", err)
	}
	return out, nil
}
