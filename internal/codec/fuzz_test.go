package codec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
)

const seedDir = "testdata/fuzz/FuzzDecode"

type seed struct {
	name string
	data []byte
}

// hostileSeeds are the inputs FuzzDecode starts from besides the golden records; the
// named ones are also committed in Go's corpus format under testdata/fuzz/FuzzDecode.
func hostileSeeds(t testing.TB) []seed {
	const cr = "ledger.results.CommandResult"
	deposit := readGolden(t, "ledger.commands.DepositFunds")
	return []seed{
		{"empty", nil},
		{"one-byte", []byte{0xc3}},
		{"wrong-magic", append([]byte{0x01, 0xc3}, deposit[2:]...)},
		{"header-only", deposit[:10]},
		{"truncated-body", deposit[:len(deposit)/2]},
		{"trailing-byte", append(slices.Clone(deposit), 0x00)},
		{"unknown-fingerprint", append([]byte{0xc3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, deposit[10:]...)},
		// A string length prefix of 0xFF…0x01: the largest varint, MinInt64 after zig-zag.
		{"huge-varint-length", frame(t, cr, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"string-length-2p40", frame(t, cr, body(func(w *avro.Writer) { w.WriteLong(1 << 40) }))},
		{"string-length-at-limit", frame(t, cr, body(func(w *avro.Writer) { w.WriteLong(defaultMaxBytes); w.WriteString("x") }))},
		{"array-count-2p40", frame(t, cr, commandResult(func(w *avro.Writer) { w.WriteLong(1 << 40) }))},
		{"array-count-at-limit", frame(t, cr, commandResult(func(w *avro.Writer) { w.WriteLong(defaultMaxSliceElems); eventRef(w, 1) }))},
		{"array-count-minint64", frame(t, cr, commandResult(func(w *avro.Writer) {
			w.WriteLong(2)
			eventRef(w, 1)
			eventRef(w, 2)
			w.WriteLong(math.MinInt64)
			w.WriteLong(0)
			w.WriteLong(math.MaxInt64)
			eventRef(w, 3)
			w.WriteLong(0)
		}))},
		{"v0-account-opened", v0AccountOpened(t)},
	}
}

// v0AccountOpened is an AccountOpened written with testdata/evolution's v0 schema.
func v0AccountOpened(t testing.TB) []byte {
	avsc, err := os.ReadFile("testdata/evolution/account_opened.v0.avsc")
	if err != nil {
		t.Fatal(err)
	}
	s, _, fp, err := parseSchema(avsc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := avro.Marshal(s, map[string]any{
		"event_id": "e", "aggregate_id": "a", "version": int64(1), "command_id": "c",
		"causation_id": "c", "occurred_at": ts(0), "owner": "o", "currency": "EUR",
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{0xc3, 0x01}, fp[:]...), b...)
}

// fuzzCatalog knows the evolution test schemas too, so fuzzing reaches the
// resolved-schema decoders (defaults, skipped fields) as well as the current ones.
func fuzzCatalog(t testing.TB) *Catalog {
	t.Helper()
	var extra [][]byte
	for _, f := range []string{"account_opened.v0.avsc", "account_opened.v2_extra_field.avsc"} {
		b, err := os.ReadFile(filepath.Join("testdata/evolution", f))
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, b)
	}
	c, err := NewCatalog(WithWriterSchemas(extra...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzDecode: Decode never panics, fails only with ErrMalformed or ErrUnknownSchema,
// and whatever it accepts re-encodes (with the current schema) to bytes that decode to
// an equal value.
func FuzzDecode(f *testing.F) {
	c := fuzzCatalog(f)
	for _, name := range c.Names() {
		f.Add(readGolden(f, name))
	}
	seeds := hostileSeeds(f)
	for _, s := range seeds {
		f.Add(s.data)
	}
	if *update {
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds,
			seed{"golden-deposit-funds", readGolden(f, "ledger.commands.DepositFunds")},
			seed{"golden-command-result", readGolden(f, "ledger.results.CommandResult")})
		for _, s := range seeds {
			corpus := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
			if err := os.WriteFile(filepath.Join(seedDir, s.name), []byte(corpus), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Decode(data)
		if err != nil {
			malformed, unknown := errors.Is(err, ErrMalformed), errors.Is(err, ErrUnknownSchema)
			if malformed == unknown {
				t.Fatalf("error must be exactly one of ErrMalformed, ErrUnknownSchema: %v", err)
			}
			if v != nil {
				t.Fatalf("value %v returned with error %v", v, err)
			}
			return
		}
		name, err := c.Name(data)
		if err != nil || name != fullName(v) {
			t.Fatalf("Name = %q, %v; decoded a %T", name, err, v)
		}
		into, _ := NewValue(name)
		if err := c.DecodeInto(data, into); err != nil || !reflect.DeepEqual(into, v) {
			t.Fatalf("DecodeInto = %+v, %v; Decode gave %+v", into, err, v)
		}
		again, err := c.Encode(v)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		v2, err := c.Decode(again)
		if err != nil {
			t.Fatalf("decode re-encoded %x: %v", again, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed the value:\n%+v\n%+v", v, v2)
		}
	})
}

// allocatedBytes returns how many bytes fn allocates on average over runs.
func allocatedBytes(runs int, fn func()) uint64 {
	fn() // warm hamba's decoder cache and the pools
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestHostileLengthsDoNotAllocate: a 10-byte header plus a length prefix must not
// make the decoder allocate what the prefix claims — neither beyond the limits (2^40)
// nor within them (1 MiB string, 64 Ki array elements backed by a handful of bytes).
func TestHostileLengthsDoNotAllocate(t *testing.T) {
	c := catalog(t)
	for _, s := range hostileSeeds(t) {
		switch s.name {
		case "string-length-2p40", "huge-varint-length", "string-length-at-limit", "array-count-2p40", "array-count-at-limit", "array-count-minint64":
		default:
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			var err error
			perRun := allocatedBytes(20, func() { _, err = c.Decode(s.data) })
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
			// The decoder's own overhead is well under a KiB; anything near the claimed
			// size means the allocation happened.
			if perRun > 64<<10 {
				t.Errorf("decoding %d bytes allocated %d bytes", len(s.data), perRun)
			}
			t.Logf("%d bytes in, %d bytes allocated, %v", len(s.data), perRun, err)
		})
	}
	t.Run("AllocsPerRun", func(t *testing.T) {
		data := frame(t, "ledger.commands.DepositFunds", body(func(w *avro.Writer) { w.WriteLong(1 << 40) }))
		if n := testing.AllocsPerRun(100, func() { _, _ = c.Decode(data) }); n > 8 {
			t.Errorf("%v allocations to reject a hostile length, want a handful", n)
		}
	})
}
