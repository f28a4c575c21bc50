package workload

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

// Records encodes the commands as Kafka records for topic: key = aggregate
// id, value = Avro single-object encoding, header "type" = the Avro full name.
// The partition is left to the producer's partitioner (Kafka's murmur2 by
// default in franz-go), as an upstream system would.
func Records(topic string, cmds []Command) ([]*kgo.Record, error) {
	cat := codec.Default()
	out := make([]*kgo.Record, len(cmds))
	for i, c := range cmds {
		v, err := cat.Encode(c.Value)
		if err != nil {
			return nil, fmt.Errorf("encode command %s: %w", c.ID, err)
		}
		name, err := cat.Name(v)
		if err != nil {
			return nil, err
		}
		out[i] = &kgo.Record{Topic: topic, Key: []byte(c.Key), Value: v, Headers: []kgo.RecordHeader{{Key: "type", Value: []byte(name)}}}
	}
	return out, nil
}

// Produce sends the commands to topic in order (per key) and waits for all
// acknowledgements; progress, if not nil, is called with the count so far.
func Produce(ctx context.Context, cl *kgo.Client, topic string, cmds []Command, progress func(int)) error {
	recs, err := Records(topic, cmds)
	if err != nil {
		return err
	}
	const chunk = 5000
	for i := 0; i < len(recs); i += chunk {
		end := min(i+chunk, len(recs))
		if err := cl.ProduceSync(ctx, recs[i:end]...).FirstErr(); err != nil {
			return fmt.Errorf("produce commands: %w", err)
		}
		if progress != nil {
			progress(end)
		}
	}
	return nil
}
