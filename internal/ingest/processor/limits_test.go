package processor

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// handleRecords runs one committed batch over values (all keyed by key) and
// returns what it wrote.
func handleRecords(t *testing.T, p *Processor, key string, values ...[]byte) []*kgo.Record {
	t.Helper()
	part := kafkax.KeyPartition([]byte(key), p.nparts)
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Topic: p.names.Commands, Partition: part, Offset: int64(i), Key: []byte(key), Value: v})
	}
	var mu sync.Mutex
	var out []*kgo.Record
	runBatch(t, p, recs, func(r *kgo.Record) { mu.Lock(); out = append(out, r); mu.Unlock() })
	return out
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Default().Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func byTopic(recs []*kgo.Record, topic string) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range recs {
		if r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

// TestOversizedOutputGoesToTheDLQ: a command that Kafka accepted at the
// very record limit (its reference alone is about 1 MiB, far outside the
// domain's bounds) goes to the DLQ, without its value when the reason
// headers do not fit beside it, instead of failing every retry of its
// transaction, and the next command of the partition is processed.
func TestOversizedOutputGoesToTheDLQ(t *testing.T) {
	p := bareProcessor(t, 4)
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	big := &codec.DepositFunds{CommandID: "d-big", AggregateID: "acc", IssuedAt: issued, Amount: 5,
		Reference: strings.Repeat("r", maxRecordBytes-recordOverhead-80)}
	bigValue := encode(t, big)
	cmdRec := &kgo.Record{Key: []byte("acc"), Value: bigValue, Headers: []kgo.RecordHeader{{Key: HeaderType, Value: []byte("ledger.commands.DepositFunds")}}}
	if size := recordSize(cmdRec); size > maxRecordBytes {
		t.Fatalf("test setup: the command record itself is %d bytes, over the limit", size)
	}
	out := handleRecords(t, p, "acc",
		encode(t, &codec.OpenAccount{CommandID: "o", AggregateID: "acc", IssuedAt: issued, Owner: "x", Currency: "EUR"}),
		bigValue,
		encode(t, &codec.DepositFunds{CommandID: "d-small", AggregateID: "acc", IssuedAt: issued, Amount: 7}),
	)
	dlq := byTopic(out, p.names.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("%d DLQ records, want 1", len(dlq))
	}
	// A reference this long is outside the domain's input bounds, which
	// are checked first (TestTopicRecordLimits covers an output over a
	// topic's record limit).
	reason := header(dlq[0], HeaderError)
	if !strings.Contains(reason, "out of bounds: reference") {
		t.Errorf("DLQ reason %q", reason)
	}
	// So close to the limit the reason headers do not fit beside the
	// value: the DLQ record points at the command instead of copying it.
	if dlq[0].Value != nil || !strings.Contains(reason, "value is left out") {
		t.Errorf("DLQ record carries a value of %d bytes", len(dlq[0].Value))
	}
	events := byTopic(out, p.names.Events)
	if len(events) != 2 || string(events[1].Key) != "acc/2" {
		t.Fatalf("events %d, want the open and the small deposit as version 2", len(events))
	}
	for _, r := range out {
		if size := recordSize(r); size > maxRecordBytes {
			t.Errorf("wrote a %s record of %d bytes", r.Topic, size)
		}
	}
	if a := p.parts[kafkax.KeyPartition([]byte("acc"), 4)].accounts["acc"]; a.Balance != 7 || a.Version != 2 {
		t.Errorf("state: balance %d version %d, want 7 and 2", a.Balance, a.Version)
	}
}

// TestDLQLeavesOutValueAtTheLimit: a record at the very limit cannot carry
// the DLQ headers as well; its DLQ record points at it without the value.
func TestDLQLeavesOutValueAtTheLimit(t *testing.T) {
	p := bareProcessor(t, 4)
	garbage := []byte(strings.Repeat("g", maxRecordBytes-recordOverhead-10))
	out := handleRecords(t, p, "acc", garbage)
	dlq := byTopic(out, p.names.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("%d DLQ records, want 1", len(dlq))
	}
	if dlq[0].Value != nil || !strings.Contains(header(dlq[0], HeaderError), "value is left out") ||
		header(dlq[0], HeaderSourceOffset) != "0" {
		t.Errorf("DLQ record: value of %d bytes, headers %v", len(dlq[0].Value), dlq[0].Headers)
	}
	if size := recordSize(dlq[0]); size > maxRecordBytes {
		t.Errorf("DLQ record of %d bytes", size)
	}
}
