package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
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
	kcfg := testenv.KafkaConfig(b, testenv.TopicPrefix(b), "restore-bench")
	cl := testenv.KafkaClient(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20))
	adm := kadm.NewClient(cl)
	names := testenv.Topology(b, adm, kcfg.TopicPrefix, partitions)
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

	benchRestore(b, ctx, kcfg, adm, partitions, n, "aggregate", func(parts map[int32]*partition) int {
		got := 0
		for _, st := range parts {
			got += len(st.accounts)
		}
		return got
	})
}

// BenchmarkRestoreDedupe measures the restore of a full dedupe window: N
// command results (LEDGER_BENCH_RESULTS, default 10,000,000) within the
// window, read from command-results to the high watermark into the dedupe
// index. Each record has a realistic value (a CommandResult with one event
// ref, ~130 bytes) and the headers the processor writes; the restore reads
// the key and the dedupe header only. It reports the restore time and the
// heap held per index entry:
//
//	LEDGER_BENCH_RESULTS=10000000 go test ./internal/ingest/processor -run '^$' -bench RestoreDedupe -benchtime 1x -timeout 60m
func BenchmarkRestoreDedupe(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_RESULTS")); err == nil && v > 0 {
		n = v
	}
	const partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	kcfg := testenv.KafkaConfig(b, testenv.TopicPrefix(b), "restore-bench")
	cl := testenv.KafkaClient(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000))
	adm := kadm.NewClient(cl)
	names := testenv.Topology(b, adm, kcfg.TopicPrefix, partitions)
	now := time.Now().UTC()
	produceStart := time.Now()
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("cmd-%016x-%08d", uint64(i)*0x9e3779b97f4a7c15, i) // 34 bytes, like a UUID
		agg := fmt.Sprintf("acc-%07d", i%1_000_000)
		res := &codec.CommandResult{CommandID: id, AggregateID: agg, CommandType: "ledger.commands.DepositFunds",
			Status: codec.StatusAccepted, Version: int64(2 + i%50),
			Events:      []codec.EventRef{{EventID: agg + "/" + strconv.Itoa(2+i%50), Type: "ledger.events.FundsDeposited", Version: int64(2 + i%50)}},
			ProcessedAt: now}
		v, err := codec.Default().Encode(res)
		if err != nil {
			b.Fatal(err)
		}
		var fp [16]byte
		copy(fp[:], id)
		part := kafkax.KeyPartition([]byte(agg), partitions)
		rec := &kgo.Record{Topic: names.Results, Partition: part, Key: []byte(id), Value: v, Headers: []kgo.RecordHeader{
			{Key: HeaderType, Value: []byte("ledger.results.CommandResult")},
			{Key: HeaderOrigin, Value: originUpstream},
			{Key: HeaderDedupe, Value: summarize(res, fp).appendHeader(nil)},
			{Key: HeaderCommandOffset, Value: []byte(strconv.Itoa(int(part)) + "/" + strconv.Itoa(i/partitions))},
		}}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				b.Error(err)
			}
		})
		if i%1_000_000 == 999_999 {
			b.Logf("produced %d", i+1)
		}
	}
	if err := cl.Flush(ctx); err != nil || failed.Load() > 0 {
		b.Fatal(err, failed.Load())
	}
	b.Logf("produced %d command results in %s", n, time.Since(produceStart).Round(time.Millisecond))

	benchRestore(b, ctx, kcfg, adm, partitions, n, "entry", func(parts map[int32]*partition) int {
		got := 0
		for _, st := range parts {
			got += st.dedupe.len()
		}
		return got
	})
}

// benchRestore restores every partition b.N times and reports the time and
// the heap held per item, where count says how many items a restore holds
// (it must be n) and unit names them.
func benchRestore(b *testing.B, ctx context.Context, kcfg config.Kafka, adm *kadm.Client, partitions int32, n int, unit string, count func(map[int32]*partition) int) {
	ids := make([]int32, partitions)
	for i := range ids {
		ids[i] = int32(i)
	}
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
		parts, err := p.restore(ctx, ids)
		dur := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := count(parts); got != n {
			b.Fatalf("restored %d %s, want %d", got, unit, n)
		}
		perItem := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
		runtime.KeepAlive(parts)
		b.ReportMetric(dur.Seconds(), "restore-s")
		b.ReportMetric(float64(n)/dur.Seconds(), unit+"/s")
		b.ReportMetric(perItem, "heap-B/"+unit)
		b.Logf("restored %d %s in %s (%.0f/s), %.0f B of heap per item", n, unit, dur.Round(time.Millisecond), float64(n)/dur.Seconds(), perItem)
	}
}
