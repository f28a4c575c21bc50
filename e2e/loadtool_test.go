package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestOpenLoopTool runs the open-loop load tool's three modes against the
// binaries at a low rate: every scheduled command is sent, answered and
// visible, with latencies recorded.
func TestOpenLoopTool(t *testing.T) {
	s := newStack(t, 4)
	ingest, _, query := s.pipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := loadgen.NewClient("http://"+ingest.addr, "http://"+query.addr, apiTokens, 256)
	producer := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	consumer, err := kafkax.ClientOpts(s.kafka)
	if err != nil {
		t.Fatal(err)
	}
	target := loadgen.KafkaTarget{Client: producer, Commands: s.names.Commands, Results: s.names.Results, ConsumerOpts: consumer}
	for i, mode := range []string{loadgen.ModeSingle, loadgen.ModeBatch, loadgen.ModeKafka} {
		t.Run(mode, func(t *testing.T) {
			rep, err := loadgen.RunOpen(ctx, cl, loadgen.OpenOptions{
				Workload: workload.Options{Seed: uint64(40 + i), Accounts: 20, Commands: 150, IDPrefix: mode + "-",
					Start: time.Now().UTC().Truncate(time.Millisecond)},
				Rate: 100, Mode: mode, BatchSize: 10, Kafka: target,
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Scheduled != 150 || rep.Sent != 150 || rep.Accepted+rep.Rejected != 150 || rep.Errors+rep.Pending+rep.Invisible != 0 || rep.Overloaded {
				t.Fatalf("%s: %+v", mode, rep)
			}
			if rep.Outcome.TotalCount() != 150 || rep.Visible.TotalCount() != int64(rep.Accepted) {
				t.Fatalf("%s: %d outcome and %d visible latencies recorded for %d answered, %d accepted",
					mode, rep.Outcome.TotalCount(), rep.Visible.TotalCount(), rep.Accepted+rep.Rejected, rep.Accepted)
			}
			t.Logf("%s: visible p50 %s p99 %s", mode, loadgen.Percentile(rep.Visible, 50), loadgen.Percentile(rep.Visible, 99))
		})
	}
}
