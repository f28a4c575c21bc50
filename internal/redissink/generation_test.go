package redissink_test

import (
	"context"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

func TestGenerationNames(t *testing.T) {
	for _, c := range []struct {
		gen             int
		prefix, pattern string
	}{
		{0, "ledger:", "ledger:{*"},
		{3, "ledger:g3:", "ledger:g3:{*"},
		{1, "a*b:g1:", `a\*b:g1:{*`},
	} {
		p := "ledger:"
		if c.gen == 1 {
			p = "a*b:"
		}
		if got := redissink.GenerationPrefix(p, c.gen); got != c.prefix {
			t.Errorf("prefix of %d: %q, want %q", c.gen, got, c.prefix)
		}
		if got := redissink.GenerationPattern(p, c.gen); got != c.pattern {
			t.Errorf("pattern of %d: %q, want %q", c.gen, got, c.pattern)
		}
		if got, err := redissink.ParseGeneration(p, c.prefix); err != nil || got != c.gen {
			t.Errorf("parse %q: %d, %v", c.prefix, got, err)
		}
	}
	for _, bad := range []string{"other:", "ledger:g0:", "ledger:gx:", "ledger:g3"} {
		if _, err := redissink.ParseGeneration("ledger:", bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

// TestReaderFollowsThePointer: a Reader reads generation 0 until the
// pointer names another, then that one.
func TestReaderFollowsThePointer(t *testing.T) {
	rdb, prefix := testenv.RedisClient(t)
	ctx := context.Background()
	h := projectiontest.Generate(9, "", 3, 30)
	gen1, err := redissink.New(rdb, redissink.Options{Prefix: redissink.GenerationPrefix(prefix, 1)})
	if err != nil {
		t.Fatal(err)
	}
	projectiontest.ApplyInBatches(t, gen1, h.Events, 10)
	r, err := redissink.NewReader(rdb, redissink.Options{Prefix: prefix}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	id := h.Events[0].AggregateID
	if _, ok, err := r.Account(ctx, id); ok || err != nil {
		t.Fatalf("generation 0 is empty, got ok=%v err=%v", ok, err)
	}
	if err := redissink.SetGeneration(ctx, rdb, prefix, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, ok, err := r.Account(ctx, id); !ok || err != nil || r.Generation() != 1 {
		t.Fatalf("after the switch: ok=%v err=%v generation %d", ok, err, r.Generation())
	}
	projectiontest.CheckHistory(t, gen1, h)
}
