package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// The standard clients other teams use, against the real pipeline: each
// produces one command of every type straight to Kafka (examples/java and
// examples/python), the outcomes are checked through the query API, and
// each decodes the events topic (and a copy of it under the legacy
// fingerprints) exactly as the ledger's own codec does.

const interopPartitions = 4

// interopHowTo says how to provide the interop tests' settings.
const interopHowTo = "run scripts/interop, then source .stack/interop/env"

// TestJavaClients: kafka-clients 4.x + Apache Avro's BinaryMessageEncoder
// and BinaryMessageDecoder with a SchemaStore over schemas/history.
func TestJavaClients(t *testing.T) {
	cp := testenv.Setting(t, "LEDGER_JAVA_CP", "the Java example's classpath", interopHowTo)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	interop(t, "java", func(ctx context.Context, program string, args ...string) *exec.Cmd {
		main := map[string]string{"produce": "ledger.example.ProduceCommands", "read": "ledger.example.ReadEvents"}[program]
		return exec.CommandContext(ctx, java, append([]string{"-cp", cp, main}, args...)...)
	})
}

// TestPythonClients: confluent-kafka (librdkafka, murmur2 partitioner) +
// fastavro.
func TestPythonClients(t *testing.T) {
	py := testenv.Setting(t, "LEDGER_PYTHON", "a Python with examples/python/requirements.txt installed", interopHowTo)
	dir, err := filepath.Abs(filepath.Join("..", "examples", "python"))
	if err != nil {
		t.Fatal(err)
	}
	interop(t, "librdkafka", func(ctx context.Context, program string, args ...string) *exec.Cmd {
		script := map[string]string{"produce": "produce_commands.py", "read": "read_events.py"}[program]
		return exec.CommandContext(ctx, py, append([]string{filepath.Join(dir, script)}, args...)...)
	})
}

type clientCmd func(ctx context.Context, program string, args ...string) *exec.Cmd

// clientLines runs a client program and parses its JSON lines.
func clientLines(t *testing.T, cmd *exec.Cmd) []map[string]any {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%s: output line %q: %v", cmd.Args[0], sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// clientSecurity returns the arguments that give a client program of
// dialect ("java" or "librdkafka") the broker's security as user (a client
// properties file, --config), or none when the broker is not secured.
func clientSecurity(t *testing.T, s *stack, dialect, user, password string) []string {
	t.Helper()
	k := s.kafka
	if k.SASLMechanism == "" {
		return nil
	}
	var lines []string
	switch dialect {
	case "java":
		lines = []string{"security.protocol=SASL_SSL", "sasl.mechanism=" + k.SASLMechanism,
			`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="` + user + `" password="` + password + `";`,
			"ssl.truststore.type=PEM", "ssl.truststore.location=" + k.TLSCAFile}
	default:
		lines = []string{"security.protocol=SASL_SSL", "sasl.mechanisms=" + k.SASLMechanism,
			"sasl.username=" + user, "sasl.password=" + password, "ssl.ca.location=" + k.TLSCAFile}
	}
	f := filepath.Join(t.TempDir(), dialect+"-"+user+".properties")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", f}
}

func interop(t *testing.T, dialect string, client clientCmd) {
	s := newStack(t, interopPartitions)
	// The producer is an upstream system (its principal may only write
	// commands); the reader reads as the tests do.
	var upstream, reader []string
	if s.kafka.SASLMechanism != "" {
		pass := os.Getenv("LEDGER_KAFKA_UPSTREAM_PASSWORD")
		if pass == "" {
			t.Fatal("the broker is secured but LEDGER_KAFKA_UPSTREAM_PASSWORD is not set: source .stack/env")
		}
		upstream = clientSecurity(t, s, dialect, "upstream", pass)
		reader = clientSecurity(t, s, dialect, s.kafka.SASLUser, s.kafka.SASLPassword)
	}
	ingest, proj, query := s.pipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	schemasDir, err := filepath.Abs(filepath.Join("..", "schemas"))
	if err != nil {
		t.Fatal(err)
	}

	// 1. Commands of every type, produced by the client.
	run := "x" + testenv.ID(t)[len(testenv.ID(t))-8:]
	produced := clientLines(t, client(ctx, "produce", append([]string{"--bootstrap", s.kafka.Brokers, "--topic-prefix", s.kafka.TopicPrefix,
		"--schemas", schemasDir, "--run", run}, upstream...)...))
	types := map[string]bool{}
	for _, p := range produced {
		types[fmt.Sprint(p["type"])] = true
		key := fmt.Sprint(p["key"])
		part, _ := p["partition"].(json.Number).Int64()
		if want := kafkax.KeyPartition([]byte(key), interopPartitions); int32(part) != want {
			t.Errorf("%s %s: partition %d, Kafka's murmur2 partitioner says %d", p["type"], p["command_id"], part, want)
		}
	}
	for _, name := range codec.Default().Names() {
		if strings.HasPrefix(name, "ledger.commands.") && !types[name] {
			t.Errorf("the client sent no %s", name)
		}
	}
	if len(produced) != 10 {
		t.Fatalf("the client printed %d records, want 10", len(produced))
	}

	// 2. Every outcome, through the query API.
	cl := loadgen.NewClient("http://"+ingest.addr, "http://"+query.addr, apiTokens, 4)
	want := map[int][2]string{ // command number → status, reason
		1: {"accepted", ""}, 2: {"accepted", ""}, 3: {"accepted", ""}, 4: {"accepted", ""}, 5: {"accepted", ""},
		6: {"accepted", ""}, 7: {"accepted", ""},
		8: {"rejected", "invalid_command"}, 9: {"rejected", "invalid_command"}, 10: {"rejected", "version_conflict"},
	}
	for n := 1; n <= 10; n++ {
		id := fmt.Sprintf("%s-%d", run, n)
		var got struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, err := cl.Get(ctx, "/v1/commands/"+url.PathEscape(id), nil, &got)
			if err != nil {
				t.Fatal(err)
			}
			if code == 200 && got.Status != "unknown" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("command %s: HTTP %d %q after 30 s", id, code, got.Status)
			}
		}
		if got.Status != want[n][0] || got.Reason != want[n][1] {
			t.Errorf("command %s (%s): %s %q, want %s %q", id, produced[n-1]["type"], got.Status, got.Reason, want[n][0], want[n][1])
		}
	}
	type account struct {
		Balance int64  `json:"balance"`
		Version int64  `json:"version"`
		Status  string `json:"status"`
		Owner   string `json:"owner"`
	}
	for _, a := range []struct {
		id   string
		want account
	}{
		{run + "-a", account{4500, 4, "open", "Ada Lovelace"}},
		{run + "-b", account{3000, 2, "open", "Grace Hopper"}},
		{run + "-c", account{0, 2, "closed", "Émilie du Châtelet"}},
	} {
		var got account
		code, err := cl.Get(ctx, "/v1/accounts/"+url.PathEscape(a.id), url.Values{"min_version": {strconv.FormatInt(a.want.Version, 10)}, "wait": {"10s"}}, &got)
		if err != nil || code != 200 || got != a.want {
			t.Errorf("account %s: HTTP %d %v %+v, want %+v", a.id, code, err, got, a.want)
		}
	}
	var tr struct {
		Status string `json:"status"`
	}
	if code, err := cl.Get(ctx, "/v1/transfers/"+url.PathEscape(run+"-t1"), nil, &tr); err != nil || code != 200 || tr.Status != "completed" {
		t.Errorf("transfer %s-t1: HTTP %d %v %q, want completed", run, code, err, tr.Status)
	}

	// 3. The events topic, decoded by the client, equals the ledger's own
	// decoding, record for record.
	ours := map[[2]int64]*kgo.Record{}
	byPartition := map[int32][]*kgo.Record{}
	if err := kafkax.ReadAll(ctx, s.kafka, s.names.Events, func(r *kgo.Record) error {
		ours[[2]int64{int64(r.Partition), r.Offset}] = r
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ours) != 8 {
		t.Fatalf("the events topic holds %d events, want 8", len(ours))
	}
	read := clientLines(t, client(ctx, "read", append([]string{"--bootstrap", s.kafka.Brokers, "--topic", s.names.Events, "--schemas", schemasDir}, reader...)...))
	if len(read) != len(ours) {
		t.Fatalf("the client read %d events, the topic holds %d", len(read), len(ours))
	}
	for _, l := range read {
		p, _ := l["partition"].(json.Number).Int64()
		o, _ := l["offset"].(json.Number).Int64()
		r := ours[[2]int64{p, o}]
		if r == nil {
			t.Fatalf("the client read an event at %d@%d that the ledger does not see", p, o)
		}
		compareEvent(t, fmt.Sprintf("%d@%d", p, o), r.Value, l, false)
	}

	// 4. The same events under their legacy fingerprints (as written
	// before the ledger followed the specification): still read, the same.
	legacyTopic := s.kafka.TopicPrefix + "legacy-events"
	if _, err := s.adm.CreateTopic(ctx, interopPartitions, 1, nil, legacyTopic); err != nil {
		t.Fatal(err)
	}
	var copies []*kgo.Record
	for p, recs := range byPartition {
		for _, r := range recs {
			copies = append(copies, &kgo.Record{Topic: legacyTopic, Partition: p, Key: r.Key, Value: testenv.LegacyValue(t, r.Value), Headers: r.Headers})
		}
	}
	manual := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := manual.ProduceSync(ctx, copies...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	read = clientLines(t, client(ctx, "read", append([]string{"--bootstrap", s.kafka.Brokers, "--topic", legacyTopic, "--schemas", schemasDir}, reader...)...))
	if len(read) != len(ours) {
		t.Fatalf("the client read %d legacy events, want %d", len(read), len(ours))
	}
	for _, l := range read {
		p, _ := l["partition"].(json.Number).Int64()
		o, _ := l["offset"].(json.Number).Int64()
		recs := byPartition[int32(p)]
		if o >= int64(len(recs)) {
			t.Fatalf("legacy copy %d@%d: no such original", p, o)
		}
		compareEvent(t, fmt.Sprintf("legacy copy %d@%d", p, o), recs[o].Value, l, true)
	}
	for _, p := range []*proc{query, proj, ingest} {
		p.stop(t)
	}
}

// compareEvent checks a client's decoding of one record (its JSON line)
// against the ledger's codec.
func compareEvent(t *testing.T, where string, value []byte, line map[string]any, legacy bool) {
	t.Helper()
	v, err := codec.Default().Decode(value)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	name, _ := codec.Default().Name(value)
	if line["type"] != name {
		t.Errorf("%s: the client says %v, the ledger %s", where, line["type"], name)
	}
	if line["legacy_fingerprint"] != legacy {
		t.Errorf("%s: legacy_fingerprint %v, want %v", where, line["legacy_fingerprint"], legacy)
	}
	if got, want := line["event"], avroFields(reflect.ValueOf(v)); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: the client decoded\n%v\nthe ledger\n%v", where, got, want)
	}
}

// avroFields is a generated value as a client's JSON shows it: a map by
// Avro field name, numbers as json.Number, timestamp-millis as epoch
// milliseconds, null as nil.
func avroFields(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return avroFields(v.Elem())
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			return json.Number(strconv.FormatInt(tm.UnixMilli(), 10))
		}
		out := map[string]any{}
		for i := range v.NumField() {
			tag := v.Type().Field(i).Tag.Get("avro")
			if tag != "" {
				out[tag] = avroFields(v.Field(i))
			}
		}
		return out
	case reflect.Slice:
		out := []any{}
		for i := range v.Len() {
			out = append(out, avroFields(v.Index(i)))
		}
		return out
	case reflect.Int, reflect.Int32, reflect.Int64:
		return json.Number(strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		return v.Bool()
	case reflect.String:
		return v.String()
	}
	return fmt.Sprintf("unsupported %s", v.Kind())
}
