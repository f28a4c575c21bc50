package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/topology"
)

type openFlags struct {
	kafka     config.Kafka
	rate      float64
	duration  time.Duration
	mode      string
	batchSize int
	searchP99 time.Duration
	from      float64
	trial     time.Duration
}

func (o *openFlags) register(fs *flag.FlagSet) {
	o.kafka.RegisterFlags(fs, "ledgerload")
	fs.Float64Var(&o.rate, "rate", 500, "commands/s offered (RATE)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to offer the rate (DURATION)")
	fs.StringVar(&o.mode, "mode", loadgen.ModeSingle, "single: one command per request; batch: --batch-size commands per request; kafka: Avro straight to the commands topic, outcomes from command-results (MODE)")
	fs.IntVar(&o.batchSize, "batch-size", 100, "commands per request in batch mode (BATCH_SIZE)")
	fs.DurationVar(&o.searchP99, "search-p99", 0, "instead of one run: find the highest rate whose send → visible p99 stays within this (SEARCH_P99)")
	fs.Float64Var(&o.from, "search-from", 250, "the first rate of a search (SEARCH_FROM)")
	fs.DurationVar(&o.trial, "search-trial", 15*time.Second, "the length of each run of a search (SEARCH_TRIAL)")
}

func runOpen(ctx context.Context, c common, f openFlags) error {
	if f.rate <= 0 || f.duration <= 0 {
		return errors.New("rate and duration must be positive")
	}
	cl, err := c.client(4096)
	if err != nil {
		return err
	}
	var target loadgen.KafkaTarget
	if f.mode == loadgen.ModeKafka {
		if err := f.kafka.Validate(); err != nil {
			return err
		}
		base, err := kafkax.ClientOpts(f.kafka)
		if err != nil {
			return err
		}
		// Kafka's default partitioner (murmur2 of the key), as upstream producers use.
		kc, err := kgo.NewClient(append(base, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
		if err != nil {
			return err
		}
		defer kc.Close()
		names := topology.NamesFor(f.kafka.TopicPrefix)
		target = loadgen.KafkaTarget{Client: kc, Commands: names.Commands, Results: names.Results, ConsumerOpts: base}
	}
	trial := func(rate float64, d time.Duration, progress bool) (*loadgen.OpenReport, loadgen.CPU, error) {
		o := c.options()
		o.Workload.Commands = int(rate * d.Seconds())
		oo := loadgen.OpenOptions{Workload: o.Workload, Rate: rate, Mode: f.mode, BatchSize: f.batchSize,
			Wait: c.wait, Visible: c.visible, Kafka: target}
		if progress {
			oo.Progress = os.Stdout
		}
		before := loadgen.SampleCPU()
		rep, err := loadgen.RunOpen(ctx, cl, oo)
		return rep, loadgen.SampleCPU().Since(before), err
	}
	if f.searchP99 <= 0 {
		fmt.Printf("ledgerload open: %s mode, %.0f commands/s offered for %s, %d accounts\n", f.mode, f.rate, f.duration, c.accounts)
		rep, cpu, err := trial(f.rate, f.duration, true)
		if err != nil {
			return err
		}
		printOpen(rep, cpu)
		return nil
	}

	// Search: double the rate until a run fails the target, then bisect.
	holds := func(r *loadgen.OpenReport) bool {
		return !r.Overloaded && r.Errors == 0 && r.Invisible == 0 && r.Pending == 0 &&
			r.Throughput() >= 0.95*r.Offered && loadgen.Percentile(r.Visible, 99) <= f.searchP99
	}
	fmt.Printf("ledgerload open: searching the highest rate with send → visible p99 ≤ %s (%s mode, %s per run)\n", f.searchP99, f.mode, f.trial)
	var good, bad float64
	var goodRep *loadgen.OpenReport
	var goodCPU loadgen.CPU
	for rate, step := f.from, 0; step < 12 && ctx.Err() == nil; step++ {
		c.prefix = fmt.Sprintf("s%d-%d-", time.Now().Unix()%1_000_000, step)
		rep, cpu, err := trial(rate, f.trial, false)
		if err != nil {
			return err
		}
		ok := holds(rep)
		fmt.Printf("  %7.0f/s offered: %7.0f/s answered, visible p50 %s p99 %s, errors %d, pending %d, overloaded %v → %s\n",
			rate, rep.Throughput(), loadgen.Percentile(rep.Visible, 50).Round(time.Millisecond),
			loadgen.Percentile(rep.Visible, 99).Round(time.Millisecond), rep.Errors, rep.Pending, rep.Overloaded, map[bool]string{true: "holds", false: "fails"}[ok])
		if ok {
			good, goodRep, goodCPU = rate, rep, cpu
		} else {
			bad = rate
		}
		switch {
		case bad == 0:
			rate *= 2
		case good == 0:
			rate /= 2
		case bad-good <= 0.1*good:
			step = 99
		default:
			rate = (good + bad) / 2
		}
	}
	if goodRep == nil {
		return fmt.Errorf("no rate from %.0f/s down held p99 ≤ %s", f.from, f.searchP99)
	}
	fmt.Printf("\nhighest rate that held: %.0f commands/s\n", good)
	printOpen(goodRep, goodCPU)
	return nil
}

func printOpen(rep *loadgen.OpenReport, cpu loadgen.CPU) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\noffered\t%.0f commands/s\n", rep.Offered)
	fmt.Fprintf(w, "answered\t%.0f commands/s\t(%d accepted, %d rejected, %d pending, %d errors, %d not visible; %d of %d scheduled sent)\n",
		rep.Throughput(), rep.Accepted, rep.Rejected, rep.Pending, rep.Errors, rep.Invisible, rep.Sent, rep.Scheduled)
	if rep.Overloaded {
		fmt.Fprintf(w, "overloaded\tstopped: too many commands outstanding\n")
	}
	fmt.Fprintf(w, "latency from the scheduled send\tp50\tp90\tp99\tp99.9\tmax\n")
	for _, h := range []struct {
		name string
		l    interface{ ValueAtQuantile(float64) int64 }
	}{{"  send → outcome (gateway)", rep.Outcome}, {"  send → visible (query API)", rep.Visible}} {
		fmt.Fprintf(w, "%s", h.name)
		for _, q := range []float64{50, 90, 99, 99.9, 100} {
			fmt.Fprintf(w, "\t%s", (time.Duration(h.l.ValueAtQuantile(q)) * time.Microsecond).Round(100*time.Microsecond))
		}
		fmt.Fprintln(w)
	}
	answered := float64(rep.Accepted + rep.Rejected)
	if answered > 0 && cpu.Total > 0 {
		fmt.Fprintf(w, "machine CPU busy\t%.0f%%\n", 100*cpu.Busy/cpu.Total)
		fmt.Fprintf(w, "CPU per command\t%.3f ms in all\n", 1000*cpu.Busy/answered)
		roles := make([]string, 0, len(cpu.ByRole))
		for r := range cpu.ByRole {
			roles = append(roles, r)
		}
		sort.Slice(roles, func(i, j int) bool { return cpu.ByRole[roles[i]] > cpu.ByRole[roles[j]] })
		for _, r := range roles {
			fmt.Fprintf(w, "  %s\t%.3f ms\n", r, 1000*cpu.ByRole[r]/answered)
		}
	}
	_ = w.Flush()
}
