package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

const testPartitions = 3

// fixture is a gateway on its own topics (3 partitions), its results
// follower running, and a reader of the commands topic.
type fixture struct {
	g     *Gateway
	mux   *http.ServeMux
	names topology.Names
	cfg   config.Kafka
	cmds  *kgo.Client // reads the commands topic from the start
	txn   *kgo.Client // writes command results transactionally
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	adm := kadm.NewClient(testenv.KafkaClient(t))
	names := testenv.Topology(t, adm, prefix, testPartitions)

	f := &fixture{
		mux:   http.NewServeMux(),
		names: names,
		cfg:   testenv.KafkaSecurity(config.Kafka{Brokers: brokers, TopicPrefix: prefix, ClientID: "gateway-test"}),
	}
	var err error
	f.g, err = New(Config{Kafka: f.cfg, Log: quietLog(), Registerer: prometheus.NewRegistry(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.g.Routes(f.mux)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.g.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.g.Close()
	})
	for f.g.Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatalf("gateway not ready: %v", f.g.Ready(context.Background()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.cmds = testenv.KafkaClient(t,
		kgo.ConsumeTopics(f.names.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	f.txn = testenv.KafkaClient(t, kgo.TransactionalID("gateway-test-"+testenv.ID(t)), kgo.DefaultProduceTopic(f.names.Results))
	return f
}

// nextCommands returns the next n records of the commands topic.
func (f *fixture) nextCommands(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := f.cmds.PollRecords(ctx, n-len(out))
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d commands before the deadline", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// produceResult writes a CommandResult transactionally, as the processor does.
func (f *fixture) produceResult(t *testing.T, res *codec.CommandResult, hs ...kgo.RecordHeader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl := f.txn
	value, err := codec.Default().Encode(res)
	if err != nil {
		t.Fatalf("encode result: %v", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(res.CommandID), Value: value, Headers: hs}).FirstErr(); err != nil {
		t.Fatalf("produce result: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

type response struct {
	status int
	body   map[string]any
}

// serve runs one request through h. It may run outside the test goroutine,
// so it reports with Errorf.
func serve(t *testing.T, h http.Handler, path, contentType, body string) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Errorf("%s: response %d is not a JSON object: %q", path, rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	return response{rec.Code, m}
}

// offlineGateway is a gateway whose Kafka is never reached: enough for
// everything refused before producing.
func offlineGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	cfg.Kafka = config.Kafka{Brokers: "127.0.0.1:1", TopicPrefix: "offline.", ClientID: "gateway-test"}
	cfg.Log = quietLog()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestValidationErrors(t *testing.T) {
	g := offlineGateway(t, Config{})
	mux := http.NewServeMux()
	g.Routes(mux)

	const open = `"type":"OpenAccount","account_id":"a1","owner":"Ada","currency":"EUR"`
	const dep = `"type":"DepositFunds","account_id":"a1"`
	const xfer = `"type":"TransferFunds","transfer_id":"t1","from_account_id":"a1","to_account_id":"a2","amount":5`
	cases := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"bad JSON", `{"type":`, 400, "invalid_json", ""},
		{"empty body", ``, 400, "invalid_json", ""},
		{"trailing data", `{` + open + `} {}`, 400, "invalid_json", ""},
		{"not an object", `[{` + open + `}]`, 400, "invalid_command", ""},
		{"missing type", `{"account_id":"a1"}`, 400, "invalid_command", "type"},
		{"type not a string", `{"type":42}`, 400, "invalid_command", "type"},
		{"unknown type", `{"type":"MintMoney","account_id":"a1"}`, 400, "invalid_command", "type"},
		{"internal CreditTransfer", `{"type":"CreditTransfer","account_id":"a1","amount":5}`, 400, "invalid_command", "type"},
		{"internal RefundTransfer", `{"type":"RefundTransfer","account_id":"a1","amount":5}`, 400, "invalid_command", "type"},
		{"internal by full name", `{"type":"ledger.commands.CreditTransfer"}`, 400, "invalid_command", "type"},
		{"unknown field", `{` + dep + `,"amout":5}`, 400, "invalid_command", "amout"},
		{"issued_at is the gateway's", `{` + dep + `,"amount":5,"issued_at":"2020-01-01T00:00:00Z"}`, 400, "invalid_command", "issued_at"},
		{"account_id missing", `{"type":"OpenAccount","owner":"Ada","currency":"EUR"}`, 400, "invalid_command", "account_id"},
		{"account_id empty", `{"type":"CloseAccount","account_id":""}`, 400, "invalid_command", "account_id"},
		{"account_id not a string", `{"type":"CloseAccount","account_id":7}`, 400, "invalid_command", "account_id"},
		{"account_id and aggregate_id differ", `{"type":"CloseAccount","account_id":"a1","aggregate_id":"a2"}`, 400, "invalid_command", "aggregate_id"},
		{"owner missing", `{"type":"OpenAccount","account_id":"a1","currency":"EUR"}`, 400, "invalid_command", "owner"},
		{"owner blank", `{` + open + `,"owner":"  "}`, 400, "invalid_command", "owner"},
		{"currency missing", `{"type":"OpenAccount","account_id":"a1","owner":"Ada"}`, 400, "invalid_command", "currency"},
		{"currency lower case", `{` + open + `,"currency":"eur"}`, 400, "invalid_command", "currency"},
		{"currency too long", `{` + open + `,"currency":"EURO"}`, 400, "invalid_command", "currency"},
		{"currency not a string", `{` + open + `,"currency":978}`, 400, "invalid_command", "currency"},
		{"overdraft negative", `{` + open + `,"overdraft_limit":-1}`, 400, "invalid_command", "overdraft_limit"},
		{"overdraft fractional", `{` + open + `,"overdraft_limit":1.5}`, 400, "invalid_command", "overdraft_limit"},
		{"amount missing", `{` + dep + `}`, 400, "invalid_command", "amount"},
		{"amount null", `{` + dep + `,"amount":null}`, 400, "invalid_command", "amount"},
		{"amount zero", `{` + dep + `,"amount":0}`, 400, "invalid_command", "amount"},
		{"amount negative", `{` + dep + `,"amount":-5}`, 400, "invalid_command", "amount"},
		{"amount fractional", `{` + dep + `,"amount":1.5}`, 400, "invalid_command", "amount"},
		{"amount fractional exponent", `{` + dep + `,"amount":1e-1}`, 400, "invalid_command", "amount"},
		{"amount as string", `{` + dep + `,"amount":"100"}`, 400, "invalid_command", "amount"},
		{"amount bool", `{` + dep + `,"amount":true}`, 400, "invalid_command", "amount"},
		{"amount beyond int64", `{` + dep + `,"amount":9223372036854775808}`, 400, "invalid_command", "amount"},
		{"amount 1e19", `{` + dep + `,"amount":1e19}`, 400, "invalid_command", "amount"},
		{"amount huge exponent", `{` + dep + `,"amount":1e999999999}`, 400, "invalid_command", "amount"},
		// The input bounds (domain.CheckBounds), one rule set with the processor's.
		{"amount over the bound", `{` + dep + `,"amount":1000000000000001}`, 400, "invalid_command", "amount"},
		{"amount as a 1 MB fraction", `{` + dep + `,"amount":1.` + strings.Repeat("0", 1<<20-64) + `}`, 400, "invalid_command", "amount"},
		{"account id over the bound", `{"type":"DepositFunds","account_id":"` + strings.Repeat("a", 129) + `","amount":5}`, 400, "invalid_command", "account_id"},
		{"account id with a control character", `{"type":"DepositFunds","account_id":"a\u0001","amount":5}`, 400, "invalid_command", "account_id"},
		{"command_id over the bound", `{` + dep + `,"amount":5,"command_id":"` + strings.Repeat("c", 129) + `"}`, 400, "invalid_command", "command_id"},
		{"correlation_id over the bound", `{` + dep + `,"amount":5,"correlation_id":"` + strings.Repeat("c", 129) + `"}`, 400, "invalid_command", "correlation_id"},
		{"reference over the bound", `{` + dep + `,"amount":5,"reference":"` + strings.Repeat("r", 513) + `"}`, 400, "invalid_command", "reference"},
		{"owner over the bound", `{"type":"OpenAccount","account_id":"a1","currency":"EUR","owner":"` + strings.Repeat("o", 257) + `"}`, 400, "invalid_command", "owner"},
		{"transfer id over the bound", `{` + xfer + `,"transfer_id":"` + strings.Repeat("t", 129) + `"}`, 400, "invalid_command", "transfer_id"},
		{"reference not a string", `{` + dep + `,"amount":5,"reference":5}`, 400, "invalid_command", "reference"},
		{"withdraw amount zero", `{"type":"WithdrawFunds","account_id":"a1","amount":0}`, 400, "invalid_command", "amount"},
		{"expected_version negative", `{` + dep + `,"amount":5,"expected_version":-1}`, 400, "invalid_command", "expected_version"},
		{"expected_version string", `{` + dep + `,"amount":5,"expected_version":"3"}`, 400, "invalid_command", "expected_version"},
		{"expected_version fractional", `{` + dep + `,"amount":5,"expected_version":2.5}`, 400, "invalid_command", "expected_version"},
		{"command_id empty", `{` + dep + `,"amount":5,"command_id":""}`, 400, "invalid_command", "command_id"},
		{"command_id blank", `{` + dep + `,"amount":5,"command_id":"  "}`, 400, "invalid_command", "command_id"},
		{"command_id not a string", `{` + dep + `,"amount":5,"command_id":12}`, 400, "invalid_command", "command_id"},
		{"command_id reserved /credit", `{` + dep + `,"amount":5,"command_id":"x/credit"}`, 400, "invalid_command", "command_id"},
		{"command_id reserved /refund", `{` + dep + `,"amount":5,"command_id":"x/refund"}`, 400, "invalid_command", "command_id"},
		{"correlation_id not a string", `{` + dep + `,"amount":5,"correlation_id":{}}`, 400, "invalid_command", "correlation_id"},
		{"transfer without transfer_id", `{"type":"TransferFunds","from_account_id":"a1","to_account_id":"a2","amount":5}`, 400, "invalid_command", "transfer_id"},
		{"transfer without source", `{"type":"TransferFunds","transfer_id":"t1","to_account_id":"a2","amount":5}`, 400, "invalid_command", "from_account_id"},
		{"transfer without destination", `{"type":"TransferFunds","transfer_id":"t1","from_account_id":"a1","amount":5}`, 400, "invalid_command", "to_account_id"},
		{"transfer amount fractional", `{` + xfer + `,"amount":0.5}`, 400, "invalid_command", "amount"},
		{"transfer aggregate_id not the source", `{` + xfer + `,"aggregate_id":"a2"}`, 400, "invalid_command", "aggregate_id"},
		{"transfer takes no account_id", `{` + xfer + `,"account_id":"a1"}`, 400, "invalid_command", "account_id"},
		{"close takes no amount", `{"type":"CloseAccount","account_id":"a1","amount":5}`, 400, "invalid_command", "amount"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := serve(t, mux, "/v1/commands", "application/json", c.body)
			if r.status != c.status || r.body["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, c.status, c.code)
			}
			if got, _ := r.body["field"].(string); got != c.field {
				t.Fatalf("field = %q, want %q (%v)", got, c.field, r.body)
			}
			if msg, _ := r.body["message"].(string); msg == "" {
				t.Fatalf("no message: %v", r.body)
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	g := offlineGateway(t, Config{MaxBatch: 3})
	mux := http.NewServeMux()
	g.Routes(mux)
	valid := `{"type":"CloseAccount","account_id":"a1"}`
	big := `{"type":"DepositFunds","account_id":"a1","amount":5,"reference":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`

	for _, c := range []struct {
		name, path, ct, body string
		status               int
		code                 string
	}{
		{"body over the limit", "/v1/commands", "", big, 413, "body_too_large"},
		{"batch body over the limit", "/v1/commands:batch", "", "[" + big + "]", 413, "body_too_large"},
		{"wait malformed", "/v1/commands?wait=soon", "", valid, 400, "invalid_wait"},
		{"wait without unit", "/v1/commands?wait=5", "", valid, 400, "invalid_wait"},
		{"wait negative", "/v1/commands?wait=-1s", "", valid, 400, "invalid_wait"},
		{"wait over MaxWait", "/v1/commands?wait=31s", "", valid, 400, "invalid_wait"},
		{"batch wait over MaxWait", "/v1/commands:batch?wait=1m", "", "[" + valid + "]", 400, "invalid_wait"},
		{"batch unreadable array", "/v1/commands:batch", "application/json", "[" + valid + ",", 400, "invalid_json"},
		{"batch neither array nor NDJSON", "/v1/commands:batch", "", `"hello"`, 400, "invalid_json"},
		{"batch empty", "/v1/commands:batch", "", "  \n", 400, "invalid_json"},
		{"batch too many items", "/v1/commands:batch", "", "[" + strings.Repeat(valid+",", 3) + valid + "]", 400, "batch_too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := serve(t, mux, c.path, c.ct, c.body)
			if r.status != c.status || r.body["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}

	// Only POST is routed; ServeMux answers 405 for the other methods.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/commands", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/commands: %d, want 405", rec.Code)
	}
}

// TestBatchRouteMatches pins that the pattern "POST /v1/commands:batch" (a
// colon inside a literal segment) is matched by ServeMux for a request from a
// real client, with the colon sent plain or percent-encoded, and is not
// confused with /v1/commands.
func TestBatchRouteMatches(t *testing.T) {
	g := offlineGateway(t, Config{})
	mux := http.NewServeMux()
	g.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/v1/commands:batch", "/v1/commands%3Abatch"} {
		// Only invalid items: nothing is produced, so no Kafka is needed.
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(`[{"type":"Nope"}]`))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Results []map[string]any `json:"results"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body.Results) != 1 || body.Results[0]["field"] != "type" {
			t.Fatalf("POST %s: %d %+v %v", path, resp.StatusCode, body, err)
		}
	}
	resp, err := http.Post(srv.URL+"/v1/commands:batchx", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /v1/commands:batchx: %d, want 404", resp.StatusCode)
	}
}

func TestKafkaUnavailable(t *testing.T) {
	g := offlineGateway(t, Config{})
	g.produceTimeout = 300 * time.Millisecond
	mux := http.NewServeMux()
	g.Routes(mux)

	r := serve(t, mux, "/v1/commands", "", `{"type":"CloseAccount","account_id":"a1","command_id":"c1"}`)
	if r.status != http.StatusServiceUnavailable || r.body["error"] != "kafka_unavailable" || r.body["command_id"] != "c1" {
		t.Fatalf("single: %d %v", r.status, r.body)
	}
	r = serve(t, mux, "/v1/commands:batch?wait=1s", "", `[{"type":"CloseAccount","account_id":"a1"},{"type":"Nope"}]`)
	results, _ := r.body["results"].([]any)
	if r.status != http.StatusServiceUnavailable || r.body["error"] != "kafka_unavailable" || len(results) != 2 {
		t.Fatalf("batch: %d %v", r.status, r.body)
	}
	if item := results[0].(map[string]any); item["error"] != "kafka_unavailable" || item["command_id"] == "" {
		t.Fatalf("batch item 0: %v", item)
	}
	if g.waiters.count() != 0 {
		t.Fatalf("%d waiters left behind", g.waiters.count())
	}
}

func TestProduceKeyPartitionAndEncoding(t *testing.T) {
	f := newFixture(t)
	accounts := []string{"acc-1", "acc-2", "acc-3", "acc-4", "acc-5", "acc-6", "konto-ä", "a"}
	ids := map[string]string{}
	for _, acc := range accounts {
		r := serve(t, f.mux, "/v1/commands", "application/json",
			`{"type":"DepositFunds","account_id":"`+acc+`","amount":250,"reference":"r","correlation_id":"corr"}`)
		if r.status != http.StatusAccepted || r.body["status"] != "pending" {
			t.Fatalf("deposit to %s: %d %v", acc, r.status, r.body)
		}
		ids[acc] = r.body["command_id"].(string)
	}
	partitions := map[int32]bool{}
	for _, rec := range f.nextCommands(t, len(accounts)) {
		acc := string(rec.Key)
		if want := kafkaPartition(acc, testPartitions); rec.Partition != want {
			t.Errorf("key %q on partition %d, Kafka's murmur2 partitioner says %d", acc, rec.Partition, want)
		}
		partitions[rec.Partition] = true
		if len(rec.Headers) != 1 || rec.Headers[0].Key != "type" || string(rec.Headers[0].Value) != "ledger.commands.DepositFunds" {
			t.Errorf("headers = %v", rec.Headers)
		}
		v, err := codec.Default().Decode(rec.Value)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		want := &codec.DepositFunds{CommandID: ids[acc], AggregateID: acc, CorrelationID: "corr", IssuedAt: wantIssued, Amount: 250, Reference: "r"}
		if got, _ := json.Marshal(v); !bytes.Equal(got, must(json.Marshal(want))) {
			t.Errorf("record\n got %s\nwant %s", got, must(json.Marshal(want)))
		}
	}
	if len(partitions) < 2 {
		t.Errorf("all keys landed on %v; the test keys should spread", partitions)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestBatchMixedItems(t *testing.T) {
	f := newFixture(t)
	open := `{"type":"OpenAccount","command_id":"b-open","account_id":"b1","owner":"Ada","currency":"EUR"}`
	dep := `{"type":"DepositFunds","command_id":"b-dep","account_id":"b1","amount":100}`
	bad := `{"type":"DepositFunds","account_id":"b1","amount":0}`
	check := func(t *testing.T, r response, want []string) {
		t.Helper()
		results, _ := r.body["results"].([]any)
		if r.status != http.StatusOK || len(results) != len(want) {
			t.Fatalf("got %d %v", r.status, r.body)
		}
		for i, w := range want {
			item := results[i].(map[string]any)
			if item["index"] != float64(i) {
				t.Errorf("item %d: index %v", i, item["index"])
			}
			got, _ := item["status"].(string)
			if got == "" {
				got, _ = item["error"].(string)
				if f, ok := item["field"].(string); ok {
					got += ":" + f
				}
			}
			if got != w {
				t.Errorf("item %d = %v, want %s", i, item, w)
			}
		}
	}
	expectProduced := func(t *testing.T, ids ...string) {
		t.Helper()
		for i, rec := range f.nextCommands(t, len(ids)) {
			v, err := codec.Default().Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			// Same key, so the order of the batch is kept.
			var got struct {
				CommandID string `json:"command_id"`
			}
			_ = json.Unmarshal(must(json.Marshal(v)), &got)
			if got.CommandID != ids[i] {
				t.Errorf("record %d is %s, want %s", i, got.CommandID, ids[i])
			}
		}
	}

	t.Run("JSON array", func(t *testing.T) {
		r := serve(t, f.mux, "/v1/commands:batch", "application/json", "["+open+","+bad+",5,"+dep+"]")
		check(t, r, []string{"pending", "invalid_command:amount", "invalid_command", "pending"})
		expectProduced(t, "b-open", "b-dep")
	})
	t.Run("NDJSON by content type", func(t *testing.T) {
		body := open + "\n" + bad + "\n\n" + `{"type":` + "\n" + dep + "\n"
		r := serve(t, f.mux, "/v1/commands:batch", "application/x-ndjson", body)
		check(t, r, []string{"pending", "invalid_command:amount", "invalid_json", "pending"})
		expectProduced(t, "b-open", "b-dep")
	})
	t.Run("NDJSON sniffed", func(t *testing.T) {
		r := serve(t, f.mux, "/v1/commands:batch", "", open+"\r\n"+`{"type":"CreditTransfer"}`+"\r\n"+dep)
		check(t, r, []string{"pending", "invalid_command:type", "pending"})
		expectProduced(t, "b-open", "b-dep")
	})
	t.Run("empty array", func(t *testing.T) {
		check(t, serve(t, f.mux, "/v1/commands:batch", "", "[]"), nil)
	})
}

func TestWaitForOutcome(t *testing.T) {
	f := newFixture(t)
	processed := time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)

	// post sends one command with ?wait= and, once it is on the commands
	// topic (so its waiter is registered), writes result, if any.
	post := func(t *testing.T, path, body string, result *codec.CommandResult) response {
		t.Helper()
		got := make(chan response, 1)
		go func() { got <- serve(t, f.mux, path, "application/json", body) }()
		if result != nil {
			f.nextCommands(t, 1)
			f.produceResult(t, result)
		}
		select {
		case r := <-got:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no response")
			return response{}
		}
	}

	t.Run("accepted 200", func(t *testing.T) {
		r := post(t, "/v1/commands?wait=10s", `{"type":"OpenAccount","command_id":"w-1","account_id":"w1","owner":"Ada","currency":"EUR"}`,
			&codec.CommandResult{CommandID: "w-1", AggregateID: "w1", CommandType: "ledger.commands.OpenAccount", Status: "ACCEPTED", Version: 1,
				Events: []codec.EventRef{{EventID: "w-1/0", Type: "ledger.events.AccountOpened", Version: 1}}, ProcessedAt: processed})
		want := `{"command_id":"w-1","events":[{"event_id":"w-1/0","type":"ledger.events.AccountOpened","version":1}],"status":"accepted","version":1}`
		if got := string(must(json.Marshal(r.body))); r.status != http.StatusOK || got != want {
			t.Fatalf("got %d %s\nwant 200 %s", r.status, got, want)
		}
	})
	t.Run("version conflict 409", func(t *testing.T) {
		r := post(t, "/v1/commands?wait=10s", `{"type":"DepositFunds","command_id":"w-2","account_id":"w1","amount":5,"expected_version":7}`,
			&codec.CommandResult{CommandID: "w-2", AggregateID: "w1", CommandType: "ledger.commands.DepositFunds", Status: "REJECTED",
				Reason: "version_conflict", Message: "expected version 7, account is at 1", Version: 1, Events: []codec.EventRef{}, ProcessedAt: processed})
		if r.status != http.StatusConflict || r.body["status"] != "rejected" || r.body["reason"] != "version_conflict" || r.body["command_id"] != "w-2" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
	})
	t.Run("other rejection 422", func(t *testing.T) {
		r := post(t, "/v1/commands?wait=10s", `{"type":"WithdrawFunds","command_id":"w-3","account_id":"w1","amount":500}`,
			&codec.CommandResult{CommandID: "w-3", AggregateID: "w1", CommandType: "ledger.commands.WithdrawFunds", Status: "REJECTED",
				Reason: "insufficient_funds", Message: "balance 0, overdraft 0", Version: 1, Events: []codec.EventRef{}, ProcessedAt: processed})
		if r.status != http.StatusUnprocessableEntity || r.body["status"] != "rejected" || r.body["reason"] != "insufficient_funds" || r.body["message"] != "balance 0, overdraft 0" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
	})
	t.Run("no result within the wait 202", func(t *testing.T) {
		start := time.Now()
		r := post(t, "/v1/commands?wait=300ms", `{"type":"CloseAccount","command_id":"w-4","account_id":"w1"}`, nil)
		if r.status != http.StatusAccepted || r.body["status"] != "pending" || r.body["command_id"] != "w-4" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("answered after %s, before the wait ran out", d)
		}
		f.nextCommands(t, 1)
		if n := f.g.waiters.count(); n != 0 {
			t.Fatalf("%d waiters left after the timeout", n)
		}
	})
	t.Run("only the result for this request answers it", func(t *testing.T) {
		// An earlier request under the same id, then this one's answer.
		got := make(chan response, 1)
		go func() {
			got <- serve(t, f.mux, "/v1/commands?wait=10s", "application/json", `{"type":"CloseAccount","command_id":"w-5","account_id":"w1"}`)
		}()
		cmd := f.nextCommands(t, 1)[0]
		at := func(off int64) kgo.RecordHeader {
			return kgo.RecordHeader{Key: processor.HeaderCommandOffset, Value: []byte(fmt.Sprintf("%d/%d", cmd.Partition, off))}
		}
		f.produceResult(t, &codec.CommandResult{CommandID: "w-5", AggregateID: "w1", CommandType: "ledger.commands.CloseAccount",
			Status: "ACCEPTED", Version: 2, Events: []codec.EventRef{}, ProcessedAt: processed}, at(cmd.Offset-1))
		f.produceResult(t, &codec.CommandResult{CommandID: "w-5", AggregateID: "w1", CommandType: "ledger.commands.CloseAccount",
			Status: "REJECTED", Reason: "idempotency_key_reused", Message: "reused", Version: 2, Events: []codec.EventRef{}, ProcessedAt: processed}, at(cmd.Offset))
		r := <-got
		if r.status != http.StatusUnprocessableEntity || r.body["reason"] != "idempotency_key_reused" {
			t.Fatalf("got %d %v, want this request's own answer (422 idempotency_key_reused)", r.status, r.body)
		}
	})
	t.Run("batch waits per item", func(t *testing.T) {
		got := make(chan response, 1)
		go func() {
			got <- serve(t, f.mux, "/v1/commands:batch?wait=3s", "application/x-ndjson",
				`{"type":"DepositFunds","command_id":"w-6","account_id":"w2","amount":5}`+"\n"+
					`{"type":"DepositFunds","command_id":"w-7","account_id":"w3","amount":5}`+"\n"+
					`{"type":"DepositFunds","account_id":"w3","amount":-5}`)
		}()
		f.nextCommands(t, 2)
		f.produceResult(t, &codec.CommandResult{CommandID: "w-7", AggregateID: "w3", CommandType: "ledger.commands.DepositFunds",
			Status: "REJECTED", Reason: "account_not_found", Message: "no account w3", Events: []codec.EventRef{}, ProcessedAt: processed})
		r := <-got
		results, _ := r.body["results"].([]any)
		if r.status != http.StatusOK || len(results) != 3 {
			t.Fatalf("got %d %v", r.status, r.body)
		}
		i0, i1, i2 := results[0].(map[string]any), results[1].(map[string]any), results[2].(map[string]any)
		if i0["status"] != "pending" || i0["command_id"] != "w-6" {
			t.Errorf("item 0: %v", i0)
		}
		if i1["status"] != "rejected" || i1["reason"] != "account_not_found" || i1["command_id"] != "w-7" {
			t.Errorf("item 1: %v", i1)
		}
		if i2["error"] != "invalid_command" || i2["field"] != "amount" {
			t.Errorf("item 2: %v", i2)
		}
	})
}
