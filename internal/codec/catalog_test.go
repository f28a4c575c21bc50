package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hamba/avro/v2"
)

// TestDefaultCatalog proves the embedded schemas load, which is what lets Default
// panic on failure instead of returning an error nobody could handle.
func TestDefaultCatalog(t *testing.T) {
	if _, err := NewCatalog(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	if d == nil || d != Default() {
		t.Fatal("Default must build one catalog and keep returning it")
	}
	names := d.Names()
	if len(names) != 16 || !slices.IsSorted(names) {
		t.Fatalf("Names() = %v, want 16 sorted names", names)
	}
	names[0] = "mutated"
	if d.Names()[0] == "mutated" {
		t.Error("Names must return a copy")
	}
}

// TestGoTypesMatchSchemas keeps generatedTypes, types_gen.go and schemas/ in step:
// every current schema has a Go type with the same canonical schema and vice versa,
// and every record type in types_gen.go is either listed or nested in a listed one.
func TestGoTypesMatchSchemas(t *testing.T) {
	c := catalog(t)
	for _, name := range c.Names() {
		if _, ok := typesByName[name]; !ok {
			t.Errorf("schema %s has no entry in generatedTypes (types.go)", name)
		}
	}
	nested := map[string]bool{}
	for _, typ := range generatedTypes {
		cur, ok := c.Schema(typ.name)
		if !ok {
			t.Errorf("generatedTypes lists %v (%s), which has no schema in schemas/", typ.ptr, typ.name)
			continue
		}
		gen := typ.new().(record).Schema()
		if cur.Fingerprint() != gen.Fingerprint() {
			t.Errorf("%v.Schema() differs from schemas/ for %s: run go generate ./internal/codec", typ.ptr, typ.name)
		}
		for _, n := range nestedRecords(cur) {
			nested[n] = true
		}
	}

	// Every type in types_gen.go with a Schema method must be accounted for.
	f, err := parser.ParseFile(token.NewFileSet(), "types_gen.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || fn.Name.Name != "Schema" {
			continue
		}
		recv := fn.Recv.List[0].Type.(*ast.StarExpr).X.(*ast.Ident).Name
		v, ok := lookupGenerated(recv)
		if !ok {
			t.Errorf("types_gen.go declares %s, which is not in generatedTypes", recv)
			continue
		}
		if _, listed := typesByName[v]; !listed && !nested[v] {
			t.Errorf("types_gen.go declares %s (%s): list it in generatedTypes or nest it in a schema", recv, v)
		}
	}
}

// nestedRecords returns the full names of the records inside a record schema.
func nestedRecords(s avro.Schema) []string {
	var out []string
	var walk func(s avro.Schema, top bool)
	walk = func(s avro.Schema, top bool) {
		switch s := s.(type) {
		case *avro.RecordSchema:
			if !top {
				out = append(out, s.FullName())
			}
			for _, f := range s.Fields() {
				walk(f.Type(), false)
			}
		case *avro.ArraySchema:
			walk(s.Items(), false)
		case *avro.MapSchema:
			walk(s.Values(), false)
		case *avro.UnionSchema:
			for _, b := range s.Types() {
				walk(b, false)
			}
		}
	}
	walk(s, true)
	return out
}

// lookupGenerated maps a Go type name from types_gen.go to its full Avro name.
func lookupGenerated(goName string) (string, bool) {
	for _, typ := range generatedTypes {
		if typ.value.Name() == goName {
			return typ.name, true
		}
	}
	// Nested records (EventRef) are not in generatedTypes; find them by their schema.
	if goName == reflect.TypeFor[EventRef]().Name() {
		return (&EventRef{}).Schema().(avro.NamedSchema).FullName(), true
	}
	return "", false
}

// crc64Avro is the Rabin fingerprint from the Avro specification, written out
// independently of hamba so a change in hamba's fingerprinting cannot go unnoticed.
func crc64Avro(b []byte) uint64 {
	const empty = 0xc15d213aa4d7a795
	var table [256]uint64
	for i := range table {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (empty & -(fp & 1))
		}
		table[i] = fp
	}
	fp := uint64(empty)
	for _, c := range b {
		fp = (fp >> 8) ^ table[byte(fp)^c]
	}
	return fp
}

// specFingerprints are the fingerprints of the current schemas as Apache Avro's
// SchemaNormalization.parsingFingerprint64 (Java, 1.12) and fastavro compute them,
// little-endian as in a single-object header; the Java and Python interop tests
// (interop/) check the same against those libraries in CI.
var specFingerprints = map[string]string{
	"ledger.commands.CloseAccount":     "be7bfb60e7df61c2",
	"ledger.commands.CreditTransfer":   "84485a3d6e2520d1",
	"ledger.commands.DepositFunds":     "357921b5b9898e3a",
	"ledger.commands.OpenAccount":      "8779b111acec66e4",
	"ledger.commands.RefundTransfer":   "ad42c43e7bb6209c",
	"ledger.commands.TransferFunds":    "f27bc544d227f715",
	"ledger.commands.WithdrawFunds":    "91d01127f6f71db7",
	"ledger.events.AccountClosed":      "2a28caf3b20470be",
	"ledger.events.AccountOpened":      "38266c2a957b92a8",
	"ledger.events.FundsDeposited":     "f9b21bd4ed2cdd12",
	"ledger.events.FundsWithdrawn":     "b11c103a456b2919",
	"ledger.events.TransferCredited":   "825c919b642973e0",
	"ledger.events.TransferDebited":    "84c14eb1f6ce95a3",
	"ledger.events.TransferRefunded":   "2971c8c9385abaa6",
	"ledger.results.CommandResult":     "9fca38514d922b06",
	"ledger.snapshots.AccountSnapshot": "7e46e7ef78d11e86",
}

// TestFingerprintFollowsTheSpecification: records are written under the
// specification's fingerprint, and hamba's own canonical form (which keeps
// logicalType) gives the legacy one, which the catalog still reads.
func TestFingerprintFollowsTheSpecification(t *testing.T) {
	c := catalog(t)
	for _, name := range c.Names() {
		s, _ := c.Schema(name)
		got := c.current[name].header
		if !bytes.Equal(got[:2], []byte{0xc3, 0x01}) || hex.EncodeToString(got[2:]) != specFingerprints[name] {
			t.Errorf("%s: header %x, want c301%s", name, got, specFingerprints[name])
		}
		var legacy [8]byte
		binary.LittleEndian.PutUint64(legacy[:], crc64Avro([]byte(s.String())))
		if ws := c.writers[legacy]; ws == nil || ws.name != name {
			t.Errorf("%s: legacy fingerprint %x is not known", name, legacy)
		}
		if !strings.Contains(s.String(), `"name":"`+name+`"`) {
			t.Errorf("%s: canonical form %s does not carry the full name", name, s)
		}
	}
}

func TestSchemaAndNewValue(t *testing.T) {
	c := catalog(t)
	for _, name := range c.Names() {
		s, ok := c.Schema(name)
		if !ok || s.(avro.NamedSchema).FullName() != name {
			t.Errorf("Schema(%q) = %v, %v", name, s, ok)
		}
		v, ok := NewValue(name)
		if !ok || fullName(v) != name || !reflect.ValueOf(v).Elem().IsZero() {
			t.Errorf("NewValue(%q) = %#v, %v", name, v, ok)
		}
	}
	if _, ok := c.Schema("ledger.results.EventRef"); ok {
		t.Error("nested records are not top-level schemas")
	}
	if v, ok := NewValue("nope"); ok || v != nil {
		t.Error("NewValue of an unknown name must fail")
	}
}

// frame prepends the current header of name to body.
func frame(t testing.TB, name string, body []byte) []byte {
	t.Helper()
	cur, ok := catalog(t).current[name]
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	return append(cur.header[:], body...)
}

// body writes Avro primitives with hamba's Writer, so hostile cases are spelled out
// value by value.
func body(fn func(w *avro.Writer)) []byte {
	w := avro.NewWriter(nil, 64)
	fn(w)
	return slices.Clone(w.Buffer())
}

// commandResult writes a CommandResult body with the given events array encoding.
func commandResult(events func(w *avro.Writer)) []byte {
	return body(func(w *avro.Writer) {
		w.WriteString("cmd")
		w.WriteString("acc")
		w.WriteString("ledger.commands.OpenAccount")
		w.WriteString("corr")
		w.WriteInt(1) // REJECTED
		w.WriteString("account_exists")
		w.WriteString("")
		w.WriteLong(3)
		events(w)
		w.WriteLong(1_700_000_000_000)
	})
}

func eventRef(w *avro.Writer, i int) {
	w.WriteString("e")
	w.WriteString("t")
	w.WriteLong(int64(i))
}

func TestDecodeMalformed(t *testing.T) {
	c := catalog(t)
	const cr = "ledger.results.CommandResult"
	good, err := c.Encode(goldenValues()[1])
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want error // ErrMalformed or ErrUnknownSchema
	}{
		{"empty", nil, ErrMalformed},
		{"one byte", []byte{0xc3}, ErrMalformed},
		{"header minus one", good[:9], ErrMalformed},
		{"wrong magic", append([]byte{0xc3, 0x02}, good[2:]...), ErrMalformed},
		{"object container magic", append([]byte("Obj\x01"), good[4:]...), ErrMalformed},
		{"unknown fingerprint", append([]byte{0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, good[10:]...), ErrUnknownSchema},
		{"header only", good[:10], ErrMalformed},
		{"truncated body", good[:len(good)-1], ErrMalformed},
		{"truncated in a string", good[:14], ErrMalformed},
		{"trailing byte", append(slices.Clone(good), 0), ErrMalformed},
		{"negative string length", frame(t, cr, body(func(w *avro.Writer) { w.WriteLong(-1) })), ErrMalformed},
		{"string longer than the record", frame(t, cr, body(func(w *avro.Writer) { w.WriteLong(1000); w.Write([]byte("abc")) })), ErrMalformed},
		{"string over MaxByteSliceSize", frame(t, cr, body(func(w *avro.Writer) { w.WriteLong(1 << 40) })), ErrMalformed},
		{"varint longer than 10 bytes", frame(t, cr, bytes.Repeat([]byte{0xff}, 11)), ErrMalformed},
		{"enum index out of range", frame(t, cr, body(func(w *avro.Writer) {
			for range 4 {
				w.WriteString("x")
			}
			w.WriteInt(2)
		})), ErrMalformed},
		{"negative enum index", frame(t, cr, body(func(w *avro.Writer) {
			for range 4 {
				w.WriteString("x")
			}
			w.WriteInt(-1)
		})), ErrMalformed},
		{"union index out of range", frame(t, "ledger.commands.CloseAccount", body(func(w *avro.Writer) {
			w.WriteString("c")
			w.WriteString("a")
			w.WriteInt(2)
		})), ErrMalformed},
		{"array block count over the limit", frame(t, cr, commandResult(func(w *avro.Writer) { w.WriteLong(1 << 40) })), ErrMalformed},
		{"array block count over the bytes left", frame(t, cr, commandResult(func(w *avro.Writer) { w.WriteLong(60_000); w.WriteLong(0) })), ErrMalformed},
		{"array without end marker", frame(t, cr, commandResult(func(w *avro.Writer) { w.WriteLong(1); eventRef(w, 1) })), ErrMalformed},
		{"negative block with wrong byte size", frame(t, cr, commandResult(func(w *avro.Writer) {
			w.WriteLong(-1)
			w.WriteLong(2)
			eventRef(w, 1)
			w.WriteLong(0)
		})), ErrMalformed},
		// Regression: hamba/avro v2.31.0 negates a block count of MinInt64 into a
		// negative slice length and, with the next block, writes past the end of the
		// slice (heap corruption), and reports success.
		{"block count MinInt64 then MaxInt64", frame(t, cr, commandResult(func(w *avro.Writer) {
			w.WriteLong(2)
			eventRef(w, 1)
			eventRef(w, 2)
			w.WriteLong(math.MinInt64)
			w.WriteLong(0)
			w.WriteLong(math.MaxInt64)
			for i := range 4 {
				eventRef(w, i)
			}
			w.WriteLong(0)
		})), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := c.Decode(tc.data)
			if !errors.Is(err, tc.want) || v != nil {
				t.Fatalf("Decode = %v, %v; want nil, %v", v, err, tc.want)
			}
			other := ErrUnknownSchema
			if tc.want == ErrUnknownSchema {
				other = ErrMalformed
			}
			if errors.Is(err, other) {
				t.Errorf("%v must not also match %v", err, other)
			}
			var de *DecodeError
			if errors.As(err, &de) && de.Name == "" {
				t.Errorf("DecodeError without a name: %v", err)
			}
			into := &CommandResult{}
			if err := c.DecodeInto(tc.data, into); err == nil {
				t.Error("DecodeInto accepted what Decode refused")
			}
			t.Log(err)
		})
	}
}

// TestDecodeBlocks covers valid array encodings other than hamba's default: several
// blocks, and negative counts followed by the block's byte size.
func TestDecodeBlocks(t *testing.T) {
	c := catalog(t)
	data := frame(t, "ledger.results.CommandResult", commandResult(func(w *avro.Writer) {
		w.WriteLong(1)
		eventRef(w, 1)
		inner := body(func(w *avro.Writer) { eventRef(w, 2); eventRef(w, 3) })
		w.WriteLong(-2)
		w.WriteLong(int64(len(inner)))
		w.Write(inner)
		w.WriteLong(0)
	}))
	v, err := c.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*CommandResult)
	want := []EventRef{{"e", "t", 1}, {"e", "t", 2}, {"e", "t", 3}}
	if !reflect.DeepEqual(got.Events, want) || got.Status != "REJECTED" || got.Reason != "account_exists" {
		t.Errorf("got %+v", got)
	}
}

func TestUnknownSchemaError(t *testing.T) {
	c := catalog(t)
	data := []byte{0xc3, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 0}
	for _, err := range []error{
		func() error { _, err := c.Decode(data); return err }(),
		func() error { _, err := c.Name(data); return err }(),
		c.DecodeInto(data, &OpenAccount{}),
	} {
		var use *UnknownSchemaError
		if !errors.As(err, &use) || use.Fingerprint != [8]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3} {
			t.Fatalf("err = %v, want *UnknownSchemaError", err)
		}
		if !errors.Is(err, ErrUnknownSchema) || errors.Is(err, ErrMalformed) {
			t.Errorf("errors.Is wrong for %v", err)
		}
		if !strings.Contains(err.Error(), "deadbeef00010203") {
			t.Errorf("message %q lacks the fingerprint in hex", err)
		}
	}
}

func TestDecodeInto(t *testing.T) {
	c := catalog(t)
	want := goldenValues()[15].(*CommandResult)
	data, err := c.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	// Reset first: leftovers from a previous record must not survive.
	got := &CommandResult{Reason: "stale", Events: make([]EventRef, 5)}
	if err := c.DecodeInto(data, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, v := range []any{&OpenAccount{}, CommandResult{}, (*CommandResult)(nil), nil, "x"} {
		if err := c.DecodeInto(data, v); !errors.Is(err, ErrTypeMismatch) || errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeInto(%T) = %v, want ErrTypeMismatch", v, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	c := catalog(t)
	for _, v := range []any{nil, "x", &EventRef{}, (*OpenAccount)(nil), &AccountSnapshot{Status: "FROZEN"}} {
		if b, err := c.Encode(v); err == nil {
			t.Errorf("Encode(%#v) = %x, want an error", v, b)
		}
		dst := []byte("keep")
		if out, err := c.AppendEncode(dst, v); err == nil || string(out) != "keep" {
			t.Errorf("AppendEncode(%#v) = %q, %v; want dst unchanged and an error", v, out, err)
		}
	}
}

func TestWithLimits(t *testing.T) {
	for _, bad := range [][2]int{{0, 1}, {1, 0}, {-1, 10}} {
		if _, err := NewCatalog(WithLimits(bad[0], bad[1])); err == nil {
			t.Errorf("WithLimits%v accepted", bad)
		}
	}
	small, err := NewCatalog(WithLimits(8, 1))
	if err != nil {
		t.Fatal(err)
	}
	full := catalog(t)

	long := &DepositFunds{CommandID: "a-command-id-longer-than-8", IssuedAt: ts(0)}
	if _, err := small.Encode(long); err == nil {
		t.Error("Encode must refuse what its own limits would refuse to decode")
	}
	data, err := full.Encode(long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Decode(data); !errors.Is(err, ErrMalformed) {
		t.Errorf("string over the limit: %v", err)
	}

	two := goldenValues()[15] // a CommandResult with two events
	data, err = full.Encode(two)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Decode(data); !errors.Is(err, ErrMalformed) {
		t.Errorf("array over the limit: %v", err)
	}
	if _, err := NewCatalog(WithLimits(1<<20, 2)); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent runs every operation from many goroutines; with -race it proves the
// pools and caches are shared safely.
func TestConcurrent(t *testing.T) {
	c, err := NewCatalog() // fresh, so hamba's decoder cache is filled concurrently
	if err != nil {
		t.Fatal(err)
	}
	values := goldenValues()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var buf []byte
			for i := range 200 {
				v := values[(g+i)%len(values)]
				var err error
				buf, err = c.AppendEncode(buf[:0], v)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := c.Decode(buf)
				if err != nil || !reflect.DeepEqual(got, v) {
					t.Errorf("round trip of %T: %v", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestDecodeDoesNotAliasInput: consumers reuse fetch buffers, so decoded strings must
// not point into data.
func TestDecodeDoesNotAliasInput(t *testing.T) {
	c := catalog(t)
	want := goldenValues()[0]
	data, err := c.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'X'
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded value changed with the input: %+v", got)
	}
}

// TestEncodeLimitsFastPath: Encode skips its validation pass when the body is no
// longer than both limits and the schema is lenBounded. For every golden value
// and every limit around its size, Encode must accept exactly what a full
// validation accepts.
func TestEncodeLimitsFastPath(t *testing.T) {
	full := catalog(t)
	for name, cur := range full.current {
		if !cur.lenBounded {
			t.Errorf("%s: not lenBounded; Encode always validates it", name)
		}
	}
	catalogs := map[int]*Catalog{}
	limited := func(limit int) *Catalog {
		if c, ok := catalogs[limit]; ok {
			return c
		}
		c, err := NewCatalog(WithLimits(limit, limit))
		if err != nil {
			t.Fatal(err)
		}
		catalogs[limit] = c
		return c
	}
	for i, v := range goldenValues() {
		data, err := full.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		ws, body, err := full.lookup(data)
		if err != nil {
			t.Fatal(err)
		}
		n := len(body)
		for _, limit := range []int{1, 2, 3, 8, 16, 32, n - 1, n, n + 1} {
			if limit < 1 {
				continue
			}
			_, encErr := limited(limit).Encode(v)
			valErr := validate(ws.plan, body, limit, limit)
			if (encErr == nil) != (valErr == nil) {
				t.Errorf("value %d (%s), limits %d: Encode says %v, validation says %v", i, ws.name, limit, encErr, valErr)
			}
		}
	}
}

func TestLenBounded(t *testing.T) {
	for _, tc := range []struct {
		schema string
		want   bool
	}{
		{`{"type":"record","name":"a.R","fields":[{"name":"s","type":"string"},{"name":"xs","type":{"type":"array","items":"long"}}]}`, true},
		{`{"type":"record","name":"a.R","fields":[{"name":"m","type":{"type":"map","values":"null"}}]}`, true},
		{`{"type":"record","name":"a.R","fields":[{"name":"xs","type":{"type":"array","items":"null"}}]}`, false},
		{`{"type":"record","name":"a.R","fields":[{"name":"next","type":["null","a.R"]}]}`, false},
	} {
		s, err := avro.ParseBytesWithCache([]byte(tc.schema), "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := compilePlan(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := lenBounded(p, 0, map[*plan]bool{}); got != tc.want {
			t.Errorf("%s: lenBounded %v, want %v", tc.schema, got, tc.want)
		}
	}
}
