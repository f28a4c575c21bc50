package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/cli"
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

// TestReplay: a stopped projector group is moved to the start, to
// explicit offsets and to a time, each first as a dry run that commits
// nothing; a group with a member, an unknown group and malformed or out of
// range offsets are refused with a message.
func TestReplay(t *testing.T) {
	prefix := testenv.TopicPrefix(t)
	cfg := testenv.KafkaConfig(t, prefix, "ledgerctl-test")
	cl := testenv.KafkaClient(t)
	adm := kadm.NewClient(cl)
	names := testenv.Topology(t, adm, prefix, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// 10 records per partition on the events topic, the second five a
	// while after the first.
	produce := func() {
		t.Helper()
		var recs []*kgo.Record
		for p := int32(0); p < 2; p++ {
			for i := 0; i < 5; i++ {
				recs = append(recs, &kgo.Record{Topic: names.Events, Partition: p, Key: []byte("k"), Value: []byte("v")})
			}
		}
		if err := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce()
	time.Sleep(1500 * time.Millisecond)
	mid := time.Now()
	time.Sleep(500 * time.Millisecond)
	produce()
	group := prefix + "projector-redis"
	var end kadm.Offsets
	end.AddOffset(names.Events, 0, 10, -1)
	end.AddOffset(names.Events, 1, 10, -1)
	if err := adm.CommitAllOffsets(ctx, group, end); err != nil {
		t.Fatal(err)
	}
	args := func(extra ...string) []string {
		a := []string{"replay", "--kafka-brokers", cfg.Brokers, "--topic-prefix", prefix, "--output", "json"}
		if cfg.TLS {
			a = append(a, "--kafka-tls", "--kafka-tls-ca", cfg.TLSCAFile)
		}
		if cfg.SASLMechanism != "" {
			a = append(a, "--kafka-sasl-mechanism", cfg.SASLMechanism, "--kafka-sasl-user", cfg.SASLUser, "--kafka-sasl-password", cfg.SASLPassword)
		}
		return append(a, extra...)
	}
	committed := func() [2]int64 {
		t.Helper()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		var out [2]int64
		for p := int32(0); p < 2; p++ {
			o, _ := offs.Lookup(names.Events, p)
			out[p] = o.At
		}
		return out
	}
	replay := func(extra ...string) ReplayReport {
		t.Helper()
		var out bytes.Buffer
		if err := run(args(extra...), &out); err != nil {
			t.Fatalf("replay %v: %v", extra, err)
		}
		var rep ReplayReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		return rep
	}
	for _, c := range []struct {
		args []string
		want [2]int64
	}{
		{[]string{"--view", "redis", "--to-earliest"}, [2]int64{0, 0}},
		{[]string{"--group", group, "--to-offset", "0:7,1:3"}, [2]int64{7, 3}},
		{[]string{"--view", "redis", "--to-time", mid.UTC().Format(time.RFC3339Nano)}, [2]int64{5, 5}},
	} {
		before := committed()
		dry := replay(c.args...)
		if !dry.DryRun || dry.Group != group || committed() != before {
			t.Fatalf("dry run %v: %+v, committed %v then %v", c.args, dry, before, committed())
		}
		rep := replay(append(c.args, "--yes")...)
		if got := committed(); rep.DryRun || got != c.want {
			t.Fatalf("replay %v: committed %v, want %v (%+v)", c.args, got, c.want, rep)
		}
	}

	// A member in the group: refused.
	member := testenv.KafkaClient(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(names.Events))
	deadline := time.Now().Add(30 * time.Second)
	for {
		member.PollRecords(ctx, 1)
		d, err := adm.DescribeGroups(ctx, group)
		if err == nil && len(d[group].Members) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member did not join")
		}
	}
	var out bytes.Buffer
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--view", "redis", "--to-earliest", "--yes"}, "has 1 member(s): stop its projectors first"},
		{[]string{"--group", prefix + "projector-nothing", "--to-earliest"}, "no such consumer group"},
		{[]string{"--view", "clickhouse", "--to-earliest"}, "no projector group"},
		{[]string{"--view", "memory", "--to-earliest"}, `view "memory": want redis or clickhouse`},
		{[]string{"--group", group, "--to-offset", "0:x"}, "want partition:offset"},
		{[]string{"--group", group}, "exactly one of --to-time, --to-offset and --to-earliest"},
		{[]string{"--group", group, "--to-time", "last week"}, "want an RFC 3339 time or a duration"},
	} {
		if err := run(args(c.args...), &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("replay %v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	member.Close()
	if err := run(args("--group", group, "--to-offset", "0:11"), &out); err == nil || !strings.Contains(err.Error(), "outside [0, 10]") {
		t.Errorf("offset past the end: %v", err)
	}
}

// TestTopologyAndRebuildAliases: `ledgerctl topology` and `ledgerctl
// rebuild` are the commands `ingest topology` and `projector rebuild` are
// (issue 17): the same plan for a fresh topic prefix, the same
// configuration errors.
func TestTopologyAndRebuildAliases(t *testing.T) {
	prefix := testenv.TopicPrefix(t)
	cfg := testenv.KafkaConfig(t, prefix, "ledgerctl-test")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kafka := []string{"--kafka-brokers", cfg.Brokers, "--topic-prefix", prefix}
	if cfg.TLS {
		kafka = append(kafka, "--kafka-tls", "--kafka-tls-ca", cfg.TLSCAFile)
	}
	if cfg.SASLMechanism != "" {
		kafka = append(kafka, "--kafka-sasl-mechanism", cfg.SASLMechanism, "--kafka-sasl-user", cfg.SASLUser, "--kafka-sasl-password", cfg.SASLPassword)
	}

	var got, want bytes.Buffer
	if err := run(append([]string{"topology", "plan", "--partitions", "3"}, kafka...), &got); err != nil {
		t.Fatalf("ledgerctl topology plan: %v\n%s", err, got.String())
	}
	if err := cli.TopologyCommand("ingest", &want).ParseAndRun(ctx, append([]string{"plan", "--partitions", "3"}, kafka...)); err != nil {
		t.Fatalf("ingest topology plan: %v\n%s", err, want.String())
	}
	if got.String() != want.String() {
		t.Errorf("ledgerctl topology plan:\n%s\ningest topology plan:\n%s", got.String(), want.String())
	}
	for _, w := range []string{"+ create " + prefix + "commands partitions=3 ", "change(s) to make"} {
		if !strings.Contains(got.String(), w) {
			t.Errorf("plan for a fresh prefix without %q:\n%s", w, got.String())
		}
	}

	bad := []string{"-view", "mongo", "-switch-timeout", "0s"}
	gotErr := run(append([]string{"rebuild"}, bad...), &got)
	wantErr := cli.RebuildCommand("projector").ParseAndRun(ctx, bad)
	if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() || !strings.Contains(gotErr.Error(), `view "mongo"`) {
		t.Errorf("rebuild -view mongo: ledgerctl %v; projector %v", gotErr, wantErr)
	}
}
