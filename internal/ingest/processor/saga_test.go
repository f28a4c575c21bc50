package processor_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// TestSagaCommandsNeedTheKey: with a saga key, the processor signs the saga
// commands it writes and a transfer completes as before; a CreditTransfer
// written by anyone else with the origin header, without the MAC or with a
// wrong one (a producer allowed to write commands, not holding the key), is
// refused and moves no money.
func TestSagaCommandsNeedTheKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := bytes.Repeat([]byte{7}, processor.MinSagaKeyBytes)
	e.start("a", func(c *processor.Config) { c.SagaKey = key })
	e.send(open("o1", "src", "EUR"), open("o2", "dst", "EUR"), deposit("d1", "src", 1000), transfer("t1", "src", "dst", 300))

	// The forger is an upstream system: on the secured local stack its own
	// principal, which may write commands and nothing else.
	upstream := e.prod
	if cfg := e.kafka; cfg.SASLMechanism != "" {
		cfg.SASLUser, cfg.SASLPassword = "upstream", os.Getenv("LEDGER_KAFKA_UPSTREAM_PASSWORD")
		var err error
		if upstream, err = kafkax.NewClient(cfg, kgo.DefaultProduceTopic(e.names.Commands)); err != nil {
			t.Fatal(err)
		}
		defer upstream.Close()
	}
	forge := func(id string, headers ...kgo.RecordHeader) {
		v, err := codec.Default().Encode(&codec.CreditTransfer{CommandID: id, AggregateID: "dst", IssuedAt: issued,
			TransferID: "tr-" + id, FromAccountID: "src", ToAccountID: "dst", Amount: 1_000_000, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Key: []byte("dst"), Value: v,
			Headers: append([]kgo.RecordHeader{{Key: processor.HeaderOrigin, Value: []byte(processor.OriginProcessor)}}, headers...)}
		if err := upstream.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatalf("produce as upstream: %v", err)
		}
	}
	forge("forged-no-mac")
	forge("forged-bad-mac", kgo.RecordHeader{Key: processor.HeaderOriginMAC, Value: bytes.Repeat([]byte{1}, 32)})
	e.send(deposit("d2", "dst", 1))

	got := e.reader(e.names.Results).results("t1", "src/3/credit", "forged-no-mac", "forged-bad-mac", "d2")
	for id, want := range map[string]string{"t1": "ACCEPTED", "src/3/credit": "ACCEPTED",
		"forged-no-mac": "REJECTED", "forged-bad-mac": "REJECTED", "d2": "ACCEPTED"} {
		if got[id].Status != want {
			t.Errorf("%s: %s %s %s, want %s", id, got[id].Status, got[id].Reason, got[id].Message, want)
		}
	}
	for _, id := range []string{"forged-no-mac", "forged-bad-mac"} {
		if got[id].Reason != "invalid_command" {
			t.Errorf("%s: reason %q, want invalid_command", id, got[id].Reason)
		}
	}
	// dst: opened, credited 300, deposit d2 (in either order), then d3:
	// version 4 unless something forged applied.
	e.send(deposit("d3", "dst", 1))
	if r := e.reader(e.names.Results).results("d3")["d3"]; r.Status != "ACCEPTED" || r.Version != 4 {
		t.Errorf("d3: %s at version %d, want ACCEPTED at 4 (a forged credit applied?)", r.Status, r.Version)
	}
	signed := 0
	for _, r := range e.reader(e.names.Commands).until("the saga command", func(rs []*kgo.Record) bool { return countKey(rs, "dst") >= 4 }) {
		if headerOf(r, processor.HeaderType) == "ledger.commands.CreditTransfer" && headerOf(r, processor.HeaderOriginMAC) != "" && string(r.Key) == "dst" {
			signed++
		}
	}
	if signed != 1 {
		t.Errorf("%d signed CreditTransfer records, want the processor's 1", signed)
	}
}
