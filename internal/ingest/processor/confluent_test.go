package processor_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
)

// confluentFramed re-frames a single-object encoded value in the Confluent
// wire format with the given schema id.
func confluentFramed(t *testing.T, v any, id uint32) []byte {
	t.Helper()
	soe, err := codec.Default().Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, soe[10:]...)
}

// TestConfluentFramingWithoutRegistry: with no schema registry configured
// (the default), a command in the Confluent wire format is dead-lettered
// with a reason that says what to configure, and the partition goes on.
func TestConfluentFramingWithoutRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	e.send(open("o", "cf-1", "EUR"))
	e.sendRaw("cf-1", confluentFramed(t, deposit("framed", "cf-1", 5), 42))
	e.send(deposit("after", "cf-1", 7))

	r := e.reader(e.names.Results)
	if got := answers(t, r, "cf-1", "after", 1)[0].res; got.Status != "ACCEPTED" || got.Version != 2 {
		t.Errorf("the command after it: %+v", got)
	}
	dlq := e.reader(e.names.DLQ).until("1 dead letter", func(rs []*kgo.Record) bool { return len(rs) >= 1 })
	if msg := headerOf(dlq[0], processor.HeaderError); !strings.Contains(msg, "Confluent wire format (schema id 42)") || !strings.Contains(msg, "SCHEMA_REGISTRY_URL") {
		t.Errorf("dlq reason %q", msg)
	}
}
