package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// ModeKafka produces each command as Avro straight to the commands topic, as
// an upstream system would, and takes its outcome from the command-results
// topic (read_committed).
const ModeKafka = "kafka"

// KafkaTarget is where ModeKafka sends: a producing client (franz-go's
// default partitioner: murmur2 of the key) and the two topics.
type KafkaTarget struct {
	Client            *kgo.Client
	Commands, Results string
	ConsumerOpts      []kgo.Opt // how to reach the brokers for the results consumer
}

// results follows the command-results topic from its end and hands each
// command id's first outcome to whoever waits for it.
type results struct {
	cl      *kgo.Client
	mu      sync.Mutex
	waiters map[string][]chan Outcome // by command id, in send order
}

func followResults(ctx context.Context, t KafkaTarget) (*results, error) {
	// Start exactly at today's end, resolved before the first command is
	// sent, so that no outcome of this run is missed.
	ends, err := kadm.NewClient(t.Client).ListEndOffsets(ctx, t.Results)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", t.Results, err)
	}
	start := map[string]map[int32]kgo.Offset{t.Results: {}}
	ends.Each(func(o kadm.ListedOffset) { start[t.Results][o.Partition] = kgo.NewOffset().At(o.Offset) })
	opts := append([]kgo.Opt{
		kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, t.ConsumerOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	r := &results{cl: cl, waiters: map[string][]chan Outcome{}}
	go r.run(ctx)
	return r, nil
}

func (r *results) run(ctx context.Context) {
	for {
		fs := r.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		// Every command record gets a result of its own (a repeat of an id
		// is answered with the id's first outcome), so each result answers
		// the oldest waiter of its id.
		fs.EachRecord(func(rec *kgo.Record) {
			v, err := codec.Default().Decode(rec.Value)
			if err != nil {
				return
			}
			cr, ok := v.(*codec.CommandResult)
			if !ok {
				return
			}
			out := Outcome{Status: 200, Result: "rejected", Reason: cr.Reason, Version: cr.Version}
			if cr.Status == codec.StatusAccepted {
				out.Result = "accepted"
			}
			r.mu.Lock()
			var ch chan Outcome
			if q := r.waiters[cr.CommandID]; len(q) > 0 {
				ch = q[0]
				if len(q) == 1 {
					delete(r.waiters, cr.CommandID)
				} else {
					r.waiters[cr.CommandID] = q[1:]
				}
			}
			r.mu.Unlock()
			if ch != nil {
				ch <- out
			}
		})
	}
}

// expect registers a waiter for id; call it before producing the command.
func (r *results) expect(id string) chan Outcome {
	ch := make(chan Outcome, 1)
	r.mu.Lock()
	r.waiters[id] = append(r.waiters[id], ch)
	r.mu.Unlock()
	return ch
}

func (r *results) forget(id string, ch chan Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.waiters[id]
	for i, c := range q {
		if c == ch {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(r.waiters, id)
	} else {
		r.waiters[id] = q
	}
}

// sendKafka produces one command and waits for its outcome.
func (r *results) sendKafka(ctx context.Context, t KafkaTarget, cmd workload.Command, wait time.Duration) (Outcome, error) {
	recs, err := workload.Records(t.Commands, []workload.Command{cmd})
	if err != nil {
		return Outcome{}, err
	}
	ch := r.expect(cmd.ID)
	if err := t.Client.ProduceSync(ctx, recs[0]).FirstErr(); err != nil {
		r.forget(cmd.ID, ch)
		return Outcome{}, fmt.Errorf("produce: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	select {
	case out := <-ch:
		return out, nil
	case <-wctx.Done():
		r.forget(cmd.ID, ch)
		return Outcome{Status: 200, Result: "pending"}, nil
	}
}
