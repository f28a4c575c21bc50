package codec

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/soe"
)

// writeWith encodes v (a generic map) with an arbitrary writer schema, framed as SOE:
// what a producer built from an older or newer checkout would put on the topic.
func writeWith(t *testing.T, avsc []byte, v map[string]any) (avro.Schema, []byte) {
	t.Helper()
	s, _, _, err := parseSchema(avsc)
	if err != nil {
		t.Fatal(err)
	}
	header, err := soe.BuildHeader(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	return s, append(header, b...)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/evolution/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEvolutionOlderWriter: an AccountOpened written before overdraft_limit and
// correlation_id existed decodes into today's *AccountOpened with their defaults, once
// the catalog knows the old schema — and is refused as unknown (not misread) when not.
func TestEvolutionOlderWriter(t *testing.T) {
	v0 := readTestdata(t, "account_opened.v0.avsc")
	s0, data := writeWith(t, v0, map[string]any{
		"event_id":     "cmd-9/0",
		"aggregate_id": "acc-old",
		"version":      int64(1),
		"command_id":   "cmd-9",
		"causation_id": "cmd-9",
		"occurred_at":  ts(0),
		"owner":        "Olga",
		"currency":     "SEK",
	})
	cur, _ := catalog(t).Schema("ledger.events.AccountOpened")
	if err := avro.NewSchemaCompatibility().Compatible(cur, s0); err != nil {
		t.Fatalf("v0 should be readable by the current schema: %v", err)
	}

	c, err := NewCatalog(WithWriterSchemas(v0))
	if err != nil {
		t.Fatal(err)
	}
	want := &AccountOpened{
		EventID: "cmd-9/0", AggregateID: "acc-old", Version: 1, CommandID: "cmd-9", CausationID: "cmd-9",
		OccurredAt: ts(0), Owner: "Olga", Currency: "SEK",
		CorrelationID: "", OverdraftLimit: 0, // defaults from the current schema
	}
	got, err := c.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(v0):\n got %+v\nwant %+v", got, want)
	}
	into := &AccountOpened{CorrelationID: "stale", OverdraftLimit: 7}
	if err := c.DecodeInto(data, into); err != nil || !reflect.DeepEqual(into, want) {
		t.Errorf("DecodeInto(v0) = %+v, %v", into, err)
	}
	if name, err := c.Name(data); err != nil || name != "ledger.events.AccountOpened" {
		t.Errorf("Name(v0) = %q, %v", name, err)
	}
	// Re-encoding always writes the current schema.
	again, err := c.Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if hdr := c.current["ledger.events.AccountOpened"].header; string(again[:10]) != string(hdr[:]) {
		t.Errorf("Encode wrote header %x, want the current %x", again[:10], hdr)
	}
	// Validation runs against the writer's (v0) layout too.
	if _, err := c.Decode(append(data, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("v0 with a trailing byte: %v", err)
	}

	// Without v0, the same bytes are an unknown schema, never a misread.
	_, err = Default().Decode(data)
	var use *UnknownSchemaError
	fp, _ := soe.ComputeFingerprint(s0)
	if !errors.Is(err, ErrUnknownSchema) || !errors.As(err, &use) || string(use.Fingerprint[:]) != string(fp) {
		t.Errorf("Default().Decode(v0) = %v, want UnknownSchemaError{%x}", err, fp)
	}
}

// TestEvolutionNewerWriter: a newer producer's compatible addition is skipped by
// today's reader; an incompatible newer schema is refused when the catalog is built,
// naming the problem, instead of failing record by record.
func TestEvolutionNewerWriter(t *testing.T) {
	extra := readTestdata(t, "account_opened.v2_extra_field.avsc")
	_, data := writeWith(t, extra, map[string]any{
		"event_id": "e", "aggregate_id": "a", "version": int64(2), "command_id": "c",
		"correlation_id": "k", "causation_id": "c", "occurred_at": ts(5), "owner": "o",
		"branch": []any{"north", "south"}, "currency": "USD", "overdraft_limit": int64(10),
	})
	c, err := NewCatalog(WithWriterSchemas(extra))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(data)
	want := &AccountOpened{EventID: "e", AggregateID: "a", Version: 2, CommandID: "c", CorrelationID: "k",
		CausationID: "c", OccurredAt: ts(5), Owner: "o", Currency: "USD", OverdraftLimit: 10}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(v2 with extra field) = %+v, %v; want %+v", got, err, want)
	}

	_, err = NewCatalog(WithWriterSchemas(readTestdata(t, "account_opened.v2_drops_owner.avsc")))
	if err == nil || !strings.Contains(err.Error(), "owner") || !strings.Contains(err.Error(), "WithWriterSchemas[0]") {
		t.Errorf("incompatible writer: err = %v, want a refusal naming the field and the source", err)
	}
}

func TestNewCatalogRejectsBadWriterSchemas(t *testing.T) {
	for name, avsc := range map[string]string{
		"not json":       `{"type":`,
		"not a record":   `{"type":"enum","name":"ledger.X","symbols":["A"]}`,
		"primitive":      `"string"`,
		"unknown record": `{"type":"record","name":"ledger.events.Nope","fields":[]}`,
	} {
		if _, err := NewCatalog(WithWriterSchemas([]byte(avsc))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A writer schema identical to a current one is harmless.
	if _, err := NewCatalog(WithWriterSchemas(readTestdata(t, "../../../../schemas/account_opened.avsc"))); err != nil {
		t.Error(err)
	}
}
