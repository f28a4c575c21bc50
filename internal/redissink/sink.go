package redissink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

// Key layout (P is Options.Prefix, e.g. "ledger:"). Every key of one
// aggregate carries the hash tag {<id>}, so a script touching them runs on
// one Redis Cluster slot:
//
//	P{<account id>}:account    hash  account_id owner currency balance overdraft_limit status version updated_at
//	P{<account id>}:tx         list  recent transactions, newest first, JSON (projection.TxView), at most MaxTx
//	P{<transfer id>}:transfer  hash  transfer_id status rank from_account_id to_account_id amount currency updated_at
//	P{<command id>}:command    hash  command_id aggregate_id command_type status reason message version processed_at; expires at processed_at+OutcomeTTL
//	P{<command id>}:command@<account id>  hash  the same, for an outcome of the id for another account than the first's (an id reused across partitions)
//
// Times are RFC 3339 in UTC with up to nanoseconds; money and versions are decimal integers.

// Options configure a Sink. The zero value of each field means its default.
type Options struct {
	// Prefix namespaces every key; a rebuild writes a new generation under
	// another prefix. It must not contain '{' or '}'. Default "ledger:".
	Prefix string
	// MaxTx bounds the recent transactions per account. Default 100.
	MaxTx int
	// OutcomeTTL is how long a command outcome stays, from its processed_at. Default 24h.
	OutcomeTTL time.Duration
	// PipelineSize is the most commands sent in one pipeline. Default 500.
	PipelineSize int
	// Now is the clock for outcome expiry. Default time.Now.
	Now func() time.Time
	// WaitReplicas, when > 0, makes every write pipeline end with WAIT:
	// Apply returns only once that many replicas of each master it wrote
	// to have the writes, so a failover (a replica promoted) cannot lose
	// what the projector then commits as done. Replication is otherwise
	// asynchronous. With fewer replicas up, Apply fails after WaitTimeout
	// and the projector retries (the writes are idempotent).
	WaitReplicas int
	// WaitTimeout bounds each WAIT. Default 2s.
	WaitTimeout time.Duration
}

// Sink writes the Redis views and reads them back. It implements
// projection.View and the transaction, transfer and outcome readers.
//
// Every event is applied by one Lua script that checks the stored version is
// event.version−1 and writes the account hash and the transaction list
// together, so go-redis retries (EOF, READONLY, LOADING) and redelivered
// events change nothing. Apply returns when every pipeline reply came back
// without error; how durable an acknowledged write is depends on the
// server's persistence (appendonly yes, appendfsync everysec loses at most
// about one second on a crash, which the projector does not notice: run
// `projector rebuild`, or use appendfsync always, if that matters).
type Sink struct {
	rdb  redis.UniversalClient
	opts Options

	applied, duplicates, gaps, unknown atomic.Int64
}

var (
	// KEYS: account, tx list. ARGV: max tx, n, then n events in version
	// order, each as: version, tx JSON or "", number of fields, field,
	// value, … Each event applies only if its version is the stored one + 1
	// (counting those applied before it in the call), exactly as n calls
	// of one event would; the hash is written once and the list pushed
	// once. Returns {applied, duplicates (version already seen), gaps}.
	accountScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local n = tonumber(ARGV[2])
local i = 3
local applied, dup, gap = 0, 0, 0
local fields, txs = {}, {}
for _ = 1, n do
  local v, nf = tonumber(ARGV[i]), tonumber(ARGV[i+2])
  if v <= cur then
    dup = dup + 1
  elseif v ~= cur + 1 then
    gap = gap + 1
  else
    cur = v
    applied = applied + 1
    for f = i + 3, i + 1 + 2 * nf, 2 do fields[ARGV[f]] = ARGV[f+1] end
    if ARGV[i+1] ~= '' then txs[#txs+1] = ARGV[i+1] end
  end
  i = i + 3 + 2 * nf
end
if applied > 0 then
  local flat = {}
  for k, val in pairs(fields) do
    flat[#flat+1] = k
    flat[#flat+1] = val
  end
  redis.call('HSET', KEYS[1], unpack(flat))
  if #txs > 0 then
    redis.call('LPUSH', KEYS[2], unpack(txs))
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
  end
end
return {applied, dup, gap}`)

	// KEYS: transfer. ARGV: rank, field, value, … A status only replaces one of
	// a lower rank (pending < completed | refunded). Returns 1 when written.
	transferScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'rank') or '0')
if tonumber(ARGV[1]) <= cur then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1`)

	// KEYS: command, command@account. ARGV: expire-at (unix ms), account,
	// field, value, … The first outcome of a command id wins; an outcome of
	// the id for another account goes to the second key, where the first
	// such outcome wins. Returns 1 when written.
	outcomeScript = redis.NewScript(`
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  if redis.call('HGET', key, 'aggregate_id') == ARGV[2] then return 0 end
  key = KEYS[2]
  if redis.call('EXISTS', key) == 1 then return 0 end
end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('PEXPIREAT', key, ARGV[1])
return 1`)

	scripts = []*redis.Script{accountScript, transferScript, outcomeScript}
)

// New returns a sink writing through rdb (a client, a cluster client or a
// ring; see NewClient).
func New(rdb redis.UniversalClient, opts Options) (*Sink, error) {
	if opts.Prefix == "" {
		opts.Prefix = "ledger:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis key prefix %q: must not contain '{' or '}' (hash tags)", opts.Prefix)
	}
	if opts.MaxTx <= 0 {
		opts.MaxTx = projection.MaxRecentTransactions
	}
	if opts.OutcomeTTL <= 0 {
		opts.OutcomeTTL = 24 * time.Hour
	}
	if opts.PipelineSize <= 0 {
		opts.PipelineSize = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 2 * time.Second
	}
	return &Sink{rdb: rdb, opts: opts}, nil
}

// AccountKey is the account hash of id.
func (s *Sink) AccountKey(id string) string { return s.opts.Prefix + "{" + id + "}:account" }

// TxKey is the recent-transactions list of account id.
func (s *Sink) TxKey(id string) string { return s.opts.Prefix + "{" + id + "}:tx" }

// TransferKey is the transfer hash of id.
func (s *Sink) TransferKey(id string) string { return s.opts.Prefix + "{" + id + "}:transfer" }

// CommandKey is the command-outcome hash of id.
func (s *Sink) CommandKey(id string) string { return s.opts.Prefix + "{" + id + "}:command" }

// Name is "redis".
func (s *Sink) Name() string { return "redis" }

// Ping checks that Redis answers.
func (s *Sink) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Stats returns how many events were applied, ignored as duplicates, not
// applied because of a version gap, and skipped as unknown, since New.
func (s *Sink) Stats() projection.ApplyStats {
	return projection.ApplyStats{Applied: s.applied.Load(), Duplicates: s.duplicates.Load(), Gaps: s.gaps.Load(), Unknown: s.unknown.Load()}
}

type call struct {
	script *redis.Script
	keys   []string
	args   []any
	kind   int // 0 account, 1 transfer, 2 outcome
	events int // of an account call: how many events it carries
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func i64(v int64) string { return strconv.FormatInt(v, 10) }

// ChangesChannel is the pub/sub channel on which the sink under prefix
// announces, after each applied batch, the ids of the accounts the batch
// wrote (newline-separated). Readers' read-your-writes waits listen on it
// (Watcher); a lost message only delays them to their next poll.
func ChangesChannel(prefix string) string { return prefix + "changes" }

// maxPerCall bounds the events of one aggregate applied by one script
// call (Lua's unpack takes at most a few thousand values).
const maxPerCall = 100

// Apply writes the batch, one script call per aggregate (for up to
// maxPerCall of its events) and one per transfer event, in pipelines; then
// it announces the accounts it wrote on ChangesChannel. See Sink.
func (s *Sink) Apply(ctx context.Context, batch []projection.Event) error {
	calls := make([]call, 0, len(batch)/2+1)
	open := map[string]int{} // aggregate → index in calls of its call with room left
	var changed strings.Builder
	for _, e := range batch {
		p, ok := projection.PatchOf(e)
		if !ok {
			s.unknown.Add(1)
			continue
		}
		tx := ""
		if p.Tx != nil {
			b, err := json.Marshal(p.Tx)
			if err != nil {
				return fmt.Errorf("encode transaction %s: %w", e.EventID, err)
			}
			tx = string(b)
		}
		var fields []any
		if p.Open {
			fields = append(fields, "account_id", e.AggregateID, "owner", p.Owner, "currency", p.Currency,
				"overdraft_limit", i64(p.OverdraftLimit), "status", projection.StatusOpen)
		}
		if p.SetBalance {
			fields = append(fields, "balance", i64(p.Balance))
		}
		if p.Close {
			fields = append(fields, "status", projection.StatusClosed)
		}
		fields = append(fields, "version", i64(p.Version), "updated_at", fmtTime(p.UpdatedAt))

		i, ok := open[e.AggregateID]
		if !ok || calls[i].events == maxPerCall {
			i = len(calls)
			open[e.AggregateID] = i
			calls = append(calls, call{script: accountScript, keys: []string{s.AccountKey(e.AggregateID), s.TxKey(e.AggregateID)},
				args: []any{s.opts.MaxTx, 0}})
			if !ok {
				changed.WriteString(e.AggregateID)
				changed.WriteByte('\n')
			}
		}
		c := &calls[i]
		c.events++
		c.args[1] = c.events
		c.args = append(append(c.args, i64(e.Version), tx, len(fields)/2), fields...)

		if t, ok := projection.TransferOf(e); ok {
			calls = append(calls, call{script: transferScript, keys: []string{s.TransferKey(t.TransferID)}, args: []any{
				projection.TransferRank(t.Status),
				"transfer_id", t.TransferID, "status", t.Status, "rank", projection.TransferRank(t.Status),
				"from_account_id", t.FromAccountID, "to_account_id", t.ToAccountID,
				"amount", i64(t.Amount), "currency", t.Currency, "updated_at", fmtTime(t.UpdatedAt),
			}, kind: 1})
		}
	}
	if err := s.run(ctx, calls); err != nil {
		return err
	}
	if changed.Len() > 0 {
		// Best effort: the batch is durable already, and waiters poll too.
		_ = s.rdb.Publish(ctx, ChangesChannel(s.opts.Prefix), changed.String()).Err()
	}
	return nil
}

// ApplyOutcomes writes command outcomes (the first outcome of a command id
// wins); each expires OutcomeTTL after its processed_at, and one already
// expired is not written. Returns when every reply came back without error.
func (s *Sink) ApplyOutcomes(ctx context.Context, batch []projection.Outcome) error {
	now := s.opts.Now()
	calls := make([]call, 0, len(batch))
	for _, o := range batch {
		at := o.ProcessedAt
		if at.IsZero() {
			at = now
		}
		exp := at.Add(s.opts.OutcomeTTL)
		if !exp.After(now) {
			continue
		}
		key := s.CommandKey(o.CommandID)
		calls = append(calls, call{script: outcomeScript, keys: []string{key, key + "@" + o.AggregateID}, kind: 2, args: []any{
			exp.UnixMilli(), o.AggregateID,
			"command_id", o.CommandID, "aggregate_id", o.AggregateID, "command_type", o.CommandType,
			"status", o.Status, "reason", o.Reason, "message", o.Message,
			"version", i64(o.Version), "processed_at", fmtTime(o.ProcessedAt),
		}})
	}
	return s.run(ctx, calls)
}

// run sends calls in pipelines of PipelineSize. On NOSCRIPT (Redis
// restarted, SCRIPT FLUSH) it loads the scripts and sends that pipeline
// again, which the guards make harmless. (Sending several pipelines at
// once over more connections was measured and gained nothing: Redis runs
// them one after the other.)
func (s *Sink) run(ctx context.Context, calls []call) error {
	for start := 0; start < len(calls); start += s.opts.PipelineSize {
		chunk := calls[start:min(start+s.opts.PipelineSize, len(calls))]
		err := s.pipeline(ctx, chunk)
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if lerr := s.load(ctx); lerr != nil {
				return lerr
			}
			err = s.pipeline(ctx, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) load(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redis: load script: %w", err)
		}
	}
	return nil
}

func (s *Sink) pipeline(ctx context.Context, chunk []call) error {
	if s.opts.WaitReplicas > 0 {
		return s.pipelineWait(ctx, chunk)
	}
	return s.send(ctx, s.rdb.Pipeline(), chunk, false)
}

// send runs chunk in pipe, followed by WAIT WaitReplicas when wait is set.
func (s *Sink) send(ctx context.Context, pipe redis.Pipeliner, chunk []call, wait bool) error {
	cmds := make([]*redis.Cmd, len(chunk))
	for i, c := range chunk {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	var acked *redis.Cmd
	if wait {
		acked = pipe.Do(ctx, "WAIT", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		for _, c := range cmds {
			if cerr := c.Err(); cerr != nil && redis.HasErrorPrefix(cerr, "NOSCRIPT") {
				return cerr
			}
		}
		return fmt.Errorf("redis: apply %d writes: %w", len(chunk), err)
	}
	if acked != nil {
		if n, err := acked.Int64(); err != nil || n < int64(s.opts.WaitReplicas) {
			return fmt.Errorf("redis: %d writes are on %d replicas after %s, want %d (a replica down or behind; retried): %v",
				len(chunk), n, s.opts.WaitTimeout, s.opts.WaitReplicas, err)
		}
	}
	for i, c := range cmds {
		if chunk[i].kind != 0 {
			continue
		}
		if n, err := c.Int64Slice(); err == nil && len(n) == 3 {
			s.applied.Add(n[0])
			s.duplicates.Add(n[1])
			s.gaps.Add(n[2])
		}
	}
	return nil
}

// pipelineWait sends chunk to each master in a pipeline of its own that
// ends with WAIT: WAIT counts the replicas that have the writes made on
// its own connection, so it must follow them on the same one. On Redis
// Cluster the calls are grouped by the master of their keys (every key of
// a call shares a hash tag) and the masters are written in parallel.
func (s *Sink) pipelineWait(ctx context.Context, chunk []call) error {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.send(ctx, s.rdb.Pipeline(), chunk, true)
	}
	groups := map[*redis.Client][]call{}
	for _, c := range chunk {
		node, err := cc.MasterForKey(ctx, c.keys[0])
		if err != nil {
			return fmt.Errorf("redis: the master of %s: %w", c.keys[0], err)
		}
		groups[node] = append(groups[node], c)
	}
	errs := make(chan error, len(groups))
	for node, calls := range groups {
		go func() { errs <- s.send(ctx, node.Pipeline(), calls, true) }()
	}
	var all []error
	for range groups {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		// The node clients do not follow MOVED: after a failover, learn
		// the new masters before the retry.
		cc.ReloadState(ctx)
		for _, e := range all {
			if redis.HasErrorPrefix(e, "NOSCRIPT") {
				return e
			}
		}
		return err
	}
	return nil
}

// Account reads the account hash of id.
func (s *Sink) Account(ctx context.Context, id string) (projection.AccountView, bool, error) {
	h, err := s.rdb.HGetAll(ctx, s.AccountKey(id)).Result()
	if err != nil || len(h) == 0 {
		return projection.AccountView{}, false, err
	}
	var errs []error
	v := projection.AccountView{
		AccountID: h["account_id"], Owner: h["owner"], Currency: h["currency"], Status: h["status"],
		Balance:        parseInt(h, "balance", &errs),
		OverdraftLimit: parseInt(h, "overdraft_limit", &errs),
		Version:        parseInt(h, "version", &errs),
		UpdatedAt:      parseTime(h, "updated_at", &errs),
	}
	if err := errors.Join(errs...); err != nil {
		return projection.AccountView{}, false, fmt.Errorf("redis: account %s: %w", id, err)
	}
	return v, true, nil
}

// RecentTransactions reads up to limit (≤ 0: all kept) transactions of account id, newest first.
func (s *Sink) RecentTransactions(ctx context.Context, id string, limit int) ([]projection.TxView, error) {
	stop := int64(limit) - 1
	if limit <= 0 {
		stop = -1
	}
	raw, err := s.rdb.LRange(ctx, s.TxKey(id), 0, stop).Result()
	if err != nil {
		return nil, err
	}
	out := make([]projection.TxView, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("redis: transactions of %s: %w", id, err)
		}
	}
	return out, nil
}

// Transfer reads the transfer hash of id.
func (s *Sink) Transfer(ctx context.Context, id string) (projection.TransferView, bool, error) {
	h, err := s.rdb.HGetAll(ctx, s.TransferKey(id)).Result()
	if err != nil || len(h) == 0 {
		return projection.TransferView{}, false, err
	}
	var errs []error
	v := projection.TransferView{
		TransferID: h["transfer_id"], Status: h["status"], FromAccountID: h["from_account_id"],
		ToAccountID: h["to_account_id"], Currency: h["currency"],
		Amount:    parseInt(h, "amount", &errs),
		UpdatedAt: parseTime(h, "updated_at", &errs),
	}
	if err := errors.Join(errs...); err != nil {
		return projection.TransferView{}, false, fmt.Errorf("redis: transfer %s: %w", id, err)
	}
	return v, true, nil
}

// CommandOutcome reads the outcome of command id (see
// projection.OutcomeReader for account); ok is false when unknown or
// expired.
func (s *Sink) CommandOutcome(ctx context.Context, id, account string) (projection.Outcome, bool, error) {
	key := s.CommandKey(id)
	h, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil || len(h) == 0 {
		return projection.Outcome{}, false, err
	}
	if account != "" && h["aggregate_id"] != account {
		other, err := s.rdb.HGetAll(ctx, key+"@"+account).Result()
		if err != nil {
			return projection.Outcome{}, false, err
		}
		if len(other) > 0 {
			h = other
		}
	}
	var errs []error
	v := projection.Outcome{
		CommandID: h["command_id"], AggregateID: h["aggregate_id"], CommandType: h["command_type"],
		Status: h["status"], Reason: h["reason"], Message: h["message"],
		Version:     parseInt(h, "version", &errs),
		ProcessedAt: parseTime(h, "processed_at", &errs),
	}
	if err := errors.Join(errs...); err != nil {
		return projection.Outcome{}, false, fmt.Errorf("redis: command %s: %w", id, err)
	}
	return v, true, nil
}

func parseInt(h map[string]string, field string, errs *[]error) int64 {
	s, ok := h[field]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("field %s: %w", field, err))
	}
	return n
}

func parseTime(h map[string]string, field string, errs *[]error) time.Time {
	s, ok := h[field]
	if !ok || s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("field %s: %w", field, err))
	}
	return t.UTC()
}
