package redissink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

// Generations. `projector rebuild` writes a view into a fresh key prefix
// and then points readers at it with one SET of the pointer key:
//
//	P + "current"   string  the prefix of the live generation, e.g. "ledger:g3:"
//
// No pointer means generation 0, whose prefix is P itself. Generation N > 0
// lives under P + "gN:". Every data key is <generation prefix>{<id>}:…, so
// the keys of one generation match GenerationPattern and no other's.

// PointerKey is the key naming the live generation's prefix.
func PointerKey(prefix string) string { return prefix + "current" }

// GenerationPrefix is the key prefix of generation gen under prefix.
func GenerationPrefix(prefix string, gen int) string {
	if gen <= 0 {
		return prefix
	}
	return prefix + "g" + strconv.Itoa(gen) + ":"
}

// GenerationPattern is a SCAN MATCH pattern for every data key of
// generation gen (and nothing else: not the pointer, not other generations).
func GenerationPattern(prefix string, gen int) string {
	var b strings.Builder
	for _, r := range GenerationPrefix(prefix, gen) {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + "{*"
}

// ParseGeneration returns the generation whose prefix is value.
func ParseGeneration(prefix, value string) (int, error) {
	if value == prefix {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(value, prefix+"g")
	if ok {
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, ":")); err == nil && n > 0 && strings.HasSuffix(rest, ":") {
			return n, nil
		}
	}
	return 0, fmt.Errorf("redis: pointer %s = %q is not a generation prefix", PointerKey(prefix), value)
}

// CurrentGeneration reads the pointer; no pointer is generation 0.
func CurrentGeneration(ctx context.Context, rdb redis.UniversalClient, prefix string) (int, error) {
	v, err := rdb.Get(ctx, PointerKey(prefix)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: read %s: %w", PointerKey(prefix), err)
	}
	return ParseGeneration(prefix, v)
}

// SetGeneration points readers at generation gen, atomically (one SET).
func SetGeneration(ctx context.Context, rdb redis.UniversalClient, prefix string, gen int) error {
	if err := rdb.Set(ctx, PointerKey(prefix), GenerationPrefix(prefix, gen), 0).Err(); err != nil {
		return fmt.Errorf("redis: set %s: %w", PointerKey(prefix), err)
	}
	return nil
}

// Reader reads the live generation of the views: it resolves the pointer
// key, caches the answer for CacheFor, and reads through a Sink of that
// prefix. A rebuild's switch is therefore seen within CacheFor. Safe for
// concurrent use.
type Reader struct {
	rdb      redis.UniversalClient
	opts     Options
	cacheFor time.Duration

	mu      sync.Mutex
	gen     int
	sink    *Sink
	checked time.Time
}

// DefaultPointerCache is how long a Reader trusts its last pointer read.
const DefaultPointerCache = time.Second

// NewReader returns a reader of the generation that opts.Prefix's pointer
// names; cacheFor ≤ 0 means DefaultPointerCache.
func NewReader(rdb redis.UniversalClient, opts Options, cacheFor time.Duration) (*Reader, error) {
	s, err := New(rdb, opts)
	if err != nil {
		return nil, err
	}
	if cacheFor <= 0 {
		cacheFor = DefaultPointerCache
	}
	return &Reader{rdb: rdb, opts: s.opts, cacheFor: cacheFor, sink: s}, nil
}

// current returns the sink of the live generation. When the pointer cannot
// be read, the last known generation keeps serving (a read of the data
// itself reports the outage).
func (r *Reader) current(ctx context.Context) *Sink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < r.cacheFor {
		return r.sink
	}
	gen, err := CurrentGeneration(ctx, r.rdb, r.opts.Prefix)
	if err != nil {
		return r.sink
	}
	r.checked = time.Now()
	if gen != r.gen || r.sink == nil {
		o := r.opts
		o.Prefix = GenerationPrefix(r.opts.Prefix, gen)
		if s, err := New(r.rdb, o); err == nil {
			r.gen, r.sink = gen, s
		}
	}
	return r.sink
}

// Generation is the generation the reader last resolved.
func (r *Reader) Generation() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// Account implements projection.AccountReader on the live generation.
func (r *Reader) Account(ctx context.Context, id string) (projection.AccountView, bool, error) {
	return r.current(ctx).Account(ctx, id)
}

// RecentTransactions reads the live generation; see Sink.RecentTransactions.
func (r *Reader) RecentTransactions(ctx context.Context, id string, limit int) ([]projection.TxView, error) {
	return r.current(ctx).RecentTransactions(ctx, id, limit)
}

// Transfer reads the live generation; see Sink.Transfer.
func (r *Reader) Transfer(ctx context.Context, id string) (projection.TransferView, bool, error) {
	return r.current(ctx).Transfer(ctx, id)
}

// CommandOutcome reads the live generation; see Sink.CommandOutcome.
func (r *Reader) CommandOutcome(ctx context.Context, id, account string) (projection.Outcome, bool, error) {
	return r.current(ctx).CommandOutcome(ctx, id, account)
}

// Ping checks that Redis answers.
func (r *Reader) Ping(ctx context.Context) error { return r.rdb.Ping(ctx).Err() }
