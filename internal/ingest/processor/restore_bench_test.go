package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

// BenchmarkRestoreSnapshots measures what a processor pays when it is
// assigned partitions holding many aggregates: the time to restore them from
// the snapshots topic (read_committed, to the high watermark) and the heap
// held per aggregate in its state. LEDGER_BENCH_AGGREGATES sets the count
// (default 1,000,000):
//
//	go test ./internal/ingest/processor -run '^$' -bench RestoreSnapshots -benchtime 1x -timeout 20m
func BenchmarkRestoreSnapshots(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_AGGREGATES")); err == nil && v > 0 {
		n = v
	}
	const partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	kcfg := config.Kafka{Brokers: testenv.Kafka(b), TopicPrefix: testenv.TopicPrefix(b), ClientID: "restore-bench"}
	cl := testenv.KafkaClient(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20))
	adm := kadm.NewClient(cl)
	o := topology.DefaultOptions()
	o.Prefix, o.Partitions = kcfg.TopicPrefix, partitions
	plan, err := topology.MakePlan(ctx, adm, topology.Declare(o), topology.PlanOptions{})
	if err == nil {
		err = topology.Apply(ctx, adm, plan)
	}
	if err != nil {
		b.Fatal(err)
	}
	names := topology.NamesFor(kcfg.TopicPrefix)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	curs := []string{"EUR", "USD", "GBP"}
	produceStart := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("acc-%07d", i)
		v, err := codec.Default().Encode(&codec.AccountSnapshot{
			AggregateID: id, Version: int64(3 + i%20), Owner: "owner " + strconv.Itoa(i), Currency: curs[i%3],
			Balance: int64(i) * 100, OverdraftLimit: 5000, Status: "OPEN", UpdatedAt: at,
		})
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(ctx, &kgo.Record{Topic: names.Snapshots, Partition: kafkax.KeyPartition([]byte(id), partitions), Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("produced %d snapshots in %s", n, time.Since(produceStart).Round(time.Millisecond))

	for i := 0; i < b.N; i++ {
		p, err := New(Config{Kafka: kcfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		p.adm = adm
		p.nparts = partitions
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.ResetTimer()
		start := time.Now()
		parts, err := p.restore(ctx, []int32{0, 1, 2, 3})
		dur := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		got := 0
		for _, st := range parts {
			got += len(st.accounts)
		}
		if got != n {
			b.Fatalf("restored %d aggregates, want %d", got, n)
		}
		perAgg := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
		runtime.KeepAlive(parts)
		b.ReportMetric(dur.Seconds(), "restore-s")
		b.ReportMetric(float64(n)/dur.Seconds(), "aggregates/s")
		b.ReportMetric(perAgg, "heap-B/aggregate")
		b.Logf("restored %d aggregates in %s (%.0f/s), %.0f B of heap per aggregate", n, dur.Round(time.Millisecond), float64(n)/dur.Seconds(), perAgg)
	}
}
