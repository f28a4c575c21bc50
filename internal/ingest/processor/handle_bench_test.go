package processor

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// BenchmarkHandle is the processor's own work per command record, without
// Kafka: decode, decide, encode the outputs, stage and apply the state, in
// batches of DefaultMaxBatch over 4 partitions, as in a transaction that
// commits. Output records are counted and dropped. -cpu sets how many parts
// of a batch are handled in parallel:
//
//	go test ./internal/ingest/processor -run '^$' -bench Handle -benchtime 125000x -cpu 1,2
//
// bareProcessor is a processor that owns nparts empty partitions, for
// handling batches without Kafka.
func bareProcessor(tb testing.TB, nparts int32) *Processor {
	tb.Helper()
	p, err := New(Config{Kafka: config.Kafka{Brokers: "127.0.0.1:9092"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	p.nparts, p.dlqParts = nparts, nparts
	for id := range nparts {
		p.parts[id] = &partition{id: id, accounts: map[string]domain.Account{}, dedupe: newIndex(0)}
	}
	return p
}

// runBatch handles records as one batch whose transaction commits, handing
// every output record to emit (called concurrently).
func runBatch(tb testing.TB, p *Processor, records []*kgo.Record, emit func(*kgo.Record)) {
	tb.Helper()
	bt, err := p.newBatch(context.Background(), time.Now(), records)
	if err != nil {
		tb.Fatal(err)
	}
	bt.emit = emit
	bt.startTxn(len(records))
	if err := bt.handleAll(); err != nil {
		tb.Fatal(err)
	}
	bt.apply()
	bt.endSpans("committed", nil)
}

func BenchmarkHandle(b *testing.B) { benchHandle(b, nil) }

// BenchmarkHandleTraced is BenchmarkHandle with tracing on, every command
// sampled, spans batched to an exporter that drops them: the processor's
// own cost of a span per command and one per transaction (kotel's publish
// and receive spans, made in the Kafka client, are not in it).
func BenchmarkHandleTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchHandle(b, tp.Tracer(tracerName))
}

func benchHandle(b *testing.B, tracer trace.Tracer) {
	const nparts = 4
	p := bareProcessor(b, nparts)
	p.tracer = tracer
	accounts := max(b.N/20, 10)
	cmds := workload.Generate(workload.Options{Seed: 9, Accounts: accounts, Commands: max(b.N-accounts, 0), IDPrefix: "b-"})
	recs, err := workload.Records(p.names.Commands, cmds)
	if err != nil {
		b.Fatal(err)
	}
	for i, r := range recs {
		r.Partition = kafkax.KeyPartition(r.Key, nparts)
		r.Offset = int64(i)
	}
	var mu sync.Mutex
	var written, bytes int64
	emit := func(r *kgo.Record) {
		mu.Lock()
		written++
		bytes += int64(len(r.Key) + len(r.Value))
		mu.Unlock()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < len(recs); i += DefaultMaxBatch {
		runBatch(b, p, recs[i:min(i+DefaultMaxBatch, len(recs))], emit)
	}
	b.StopTimer()
	b.ReportMetric(float64(written)/float64(len(recs)), "records/cmd")
	b.ReportMetric(float64(bytes)/float64(len(recs)), "B-written/cmd")
}
