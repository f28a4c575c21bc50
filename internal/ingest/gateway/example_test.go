package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestProduceAvroExample builds examples/produce-avro, runs it against the
// test's topics and checks that what an upstream system produces that way
// is what the gateway would produce: decodable by codec.Default() (so the
// hand-written single-object encoding and fingerprint are right), keyed and
// partitioned like Kafka's default partitioner, with the type header.
func TestProduceAvroExample(t *testing.T) {
	f := newFixture(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "produce-avro")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./examples/produce-avro")
	build.Dir = filepath.Join("..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/produce-avro: %v\n%s", err, out)
	}

	account := "ex-" + testenv.ID(t)
	args := []string{"-brokers", f.cfg.Brokers, "-topic-prefix", f.cfg.TopicPrefix, "-account", account, "-amount", "1234"}
	var env []string
	if f.cfg.SASLMechanism != "" {
		// As an upstream producer, whose principal may only write commands.
		args = append(args, "-tls-ca", f.cfg.TLSCAFile, "-sasl-user", "upstream")
		env = append(env, "KAFKA_SASL_PASSWORD="+os.Getenv("LEDGER_KAFKA_UPSTREAM_PASSWORD"))
	}
	run := exec.CommandContext(ctx, bin, args...)
	run.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("produce-avro: %v\n%s", err, stderr.String())
	}
	type printed struct {
		Type      string `json:"type"`
		CommandID string `json:"command_id"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	}
	var lines []printed
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var p printed
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		lines = append(lines, p)
	}
	if len(lines) != 2 {
		t.Fatalf("printed %d records, want 2:\n%s", len(lines), out)
	}

	recs := f.nextCommands(t, 2)
	wantPartition := kafkaPartition(account, testPartitions)
	for i, rec := range recs {
		if string(rec.Key) != account || rec.Partition != wantPartition || rec.Offset != lines[i].Offset || rec.Partition != lines[i].Partition {
			t.Errorf("record %d: key %q partition %d offset %d; want key %q partition %d (printed %+v)",
				i, rec.Key, rec.Partition, rec.Offset, account, wantPartition, lines[i])
		}
		if len(rec.Headers) != 1 || rec.Headers[0].Key != "type" || string(rec.Headers[0].Value) != lines[i].Type {
			t.Errorf("record %d: headers %v", i, rec.Headers)
		}
		name, err := codec.Default().Name(rec.Value)
		if err != nil || name != lines[i].Type {
			t.Errorf("record %d: writer schema %q (%v), header says %q", i, name, err, lines[i].Type)
		}
		// docs/producing-commands.md: the fingerprint, as hex in header
		// order, names the schema's file in schemas/history.
		if fp, _ := codec.Default().Fingerprint(lines[i].Type); string(fp[:]) != string(rec.Value[2:10]) {
			t.Errorf("record %d: fingerprint %x, want the specification's %x", i, rec.Value[2:10], fp)
		}
		history := filepath.Join("..", "..", "..", "schemas", "history", fmt.Sprintf("%s.%x.avsc", lines[i].Type, rec.Value[2:10]))
		if _, err := os.Stat(history); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
	}
	v0, err := codec.Default().Decode(recs[0].Value)
	if err != nil {
		t.Fatalf("decode OpenAccount: %v", err)
	}
	open, ok := v0.(*codec.OpenAccount)
	if !ok || open.CommandID != lines[0].CommandID || open.AggregateID != account || open.Currency != "EUR" || open.Owner == "" || open.IssuedAt.IsZero() || open.ExpectedVersion != nil {
		t.Errorf("first record = %#v", v0)
	}
	v1, err := codec.Default().Decode(recs[1].Value)
	if err != nil {
		t.Fatalf("decode DepositFunds: %v", err)
	}
	dep, ok := v1.(*codec.DepositFunds)
	if !ok || dep.CommandID != lines[1].CommandID || dep.AggregateID != account || dep.Amount != 1234 || dep.CorrelationID != open.CorrelationID || dep.CorrelationID == "" {
		t.Errorf("second record = %#v", v1)
	}
}
