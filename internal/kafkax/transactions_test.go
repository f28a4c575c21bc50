package kafkax_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestTransactionalRoundTrip proves the broker's single-node transaction
// settings: a committed transaction is visible to a read_committed consumer,
// an aborted one is not (but is to read_uncommitted).
func TestTransactionalRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := testenv.TopicPrefix(t) + "txn"
	adm := kadm.NewClient(testenv.KafkaClient(t))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	producer := testenv.KafkaClient(t,
		kgo.TransactionalID("txn-roundtrip-"+testenv.ID(t)),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	produceTxn := func(prefix string, n int, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for i := 0; i < n; i++ {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		if err := producer.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	produceTxn("committed", 10, kgo.TryCommit)
	produceTxn("aborted", 5, kgo.TryAbort)
	produceTxn("committed2", 3, kgo.TryCommit)

	// read consumes until it has n records, then polls once more to catch
	// anything it should not have seen.
	read := func(level kgo.IsolationLevel, n int) map[string]int {
		t.Helper()
		c := testenv.KafkaClient(t,
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(level),
		)
		got := map[string]int{}
		total := 0
		deadline := time.Now().Add(30 * time.Second)
		for extra := 0; extra < 2 && time.Now().Before(deadline); {
			fctx, fcancel := context.WithTimeout(ctx, time.Second)
			fs := c.PollFetches(fctx)
			fcancel()
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				got[v[:strings.LastIndexByte(v, '-')]]++
				total++
			})
			if total >= n {
				extra++
			}
		}
		return got
	}

	committed := read(kgo.ReadCommitted(), 13)
	if committed["committed"] != 10 || committed["committed2"] != 3 || committed["aborted"] != 0 {
		t.Fatalf("read_committed saw %v; want 10 committed, 3 committed2, 0 aborted", committed)
	}
	uncommitted := read(kgo.ReadUncommitted(), 18)
	if uncommitted["aborted"] != 5 {
		t.Fatalf("read_uncommitted saw %v; want the 5 aborted records too", uncommitted)
	}
}

// TestReadAllStopsAtHighWatermark: ReadAll sees exactly the committed records
// when the log ends in a transaction marker (commit or abort), and stops.
func TestReadAllStopsAtHighWatermark(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := testenv.Kafka(t)
	topic := testenv.TopicPrefix(t) + "readall"
	adm := kadm.NewClient(testenv.KafkaClient(t))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := testenv.KafkaClient(t, kgo.TransactionalID("readall-"+testenv.ID(t)), kgo.DefaultProduceTopic(topic))
	txn := func(n int, end kgo.TransactionEndTry) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	txn(20, kgo.TryCommit)
	txn(7, kgo.TryAbort) // the log of some partitions now ends in an abort marker
	cfg := testenv.KafkaSecurity(config.Kafka{Brokers: brokers, ClientID: "readall-test"})
	n := 0
	if err := kafkax.ReadAll(ctx, cfg, topic, func(*kgo.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("ReadAll saw %d records, want the 20 committed", n)
	}
}

// TestReadFromAfterDeletedRecords: ReadAll starts at the log start when
// records were deleted (retention), ReadFrom at the given offsets, and a
// partition whose every record was deleted is done at once, not waited on.
func TestReadFromAfterDeletedRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := testenv.TopicPrefix(t) + "deleted"
	adm := kadm.NewClient(testenv.KafkaClient(t))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := testenv.KafkaClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part := range int32(2) {
		for i := range 10 {
			if err := p.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Partition 0 keeps offsets 4..9; partition 1 keeps nothing.
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4})
	del.Add(kadm.Offset{Topic: topic, Partition: 1, At: 10})
	resp, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := testenv.KafkaConfig(t, "", "readfrom-test")
	read := func(from map[int32]int64) []string {
		var got []string
		err := kafkax.ReadFrom(ctx, cfg, topic, from, func(r *kgo.Record) error {
			got = append(got, fmt.Sprintf("%d@%d", r.Partition, r.Offset))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := strings.Join(read(nil), " "); got != "0@4 0@5 0@6 0@7 0@8 0@9" {
		t.Fatalf("ReadAll after deletions: %s", got)
	}
	if got := strings.Join(read(map[int32]int64{0: 7, 1: 2}), " "); got != "0@7 0@8 0@9" {
		t.Fatalf("ReadFrom 7 and 2: %s", got)
	}
}
