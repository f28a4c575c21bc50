package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestStatus: a processor group that has consumed nothing of 12 commands
// produced 2 s ago lags 12 records and at least 2 s; once its offsets reach
// the ends, 0 and 0. Bad input fails with a message.
func TestStatus(t *testing.T) {
	prefix := testenv.TopicPrefix(t)
	cfg := testenv.KafkaConfig(t, prefix, "ledgerctl-test")
	cl := testenv.KafkaClient(t)
	adm := kadm.NewClient(cl)
	names := testenv.Topology(t, adm, prefix, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmds := workload.Generate(workload.Options{Seed: 3, Accounts: 12, Commands: 0, IDPrefix: testenv.ID(t) + "-"})
	if err := workload.Produce(ctx, cl, names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}
	group := prefix + "processor"
	commitAt := func(end bool) {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, names.Commands)
		if err != nil {
			t.Fatal(err)
		}
		var offs kadm.Offsets
		ends.Each(func(e kadm.ListedOffset) {
			at := int64(0)
			if end {
				at = e.Offset
			}
			offs.AddOffset(e.Topic, e.Partition, at, -1)
		})
		if err := adm.CommitAllOffsets(ctx, group, offs); err != nil {
			t.Fatal(err)
		}
	}
	commitAt(false)
	time.Sleep(2 * time.Second)

	status := func(args ...string) []Group {
		t.Helper()
		var out bytes.Buffer
		env := []string{"--kafka-brokers", cfg.Brokers, "--topic-prefix", prefix}
		if cfg.TLS {
			env = append(env, "--kafka-tls", "--kafka-tls-ca", cfg.TLSCAFile)
		}
		if cfg.SASLMechanism != "" {
			env = append(env, "--kafka-sasl-mechanism", cfg.SASLMechanism, "--kafka-sasl-user", cfg.SASLUser, "--kafka-sasl-password", cfg.SASLPassword)
		}
		if err := run(append(append([]string{"status"}, env...), args...), &out); err != nil {
			t.Fatal(err)
		}
		var st StatusReport
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		if st.DLQ.Topic != names.DLQ || st.DLQ.Records != 0 || st.DLQ.NewestAgeSeconds != -1 {
			t.Errorf("status of an empty DLQ: %+v", st.DLQ)
		}
		return st.Groups
	}
	gs := status("--output", "json")
	if len(gs) != 1 || gs[0].Group != group || gs[0].Topic != names.Commands || gs[0].Lag != 12 || gs[0].LagSeconds < 2 || len(gs[0].Partitions) != 3 {
		t.Fatalf("status before consuming: %+v", gs)
	}
	commitAt(true)
	gs = status("--output", "json")
	if len(gs) != 1 || gs[0].Lag != 0 || gs[0].LagSeconds != 0 {
		t.Fatalf("status after consuming everything: %+v", gs)
	}

	var out bytes.Buffer
	if err := run([]string{"status", "--output", "xml"}, &out); err == nil || !strings.Contains(err.Error(), `output "xml"`) {
		t.Errorf("--output xml: %v", err)
	}
}
