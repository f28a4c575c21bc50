package processor_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/schemas"
)

// confluentFramed re-frames a single-object encoded value in the Confluent
// wire format with the given schema id.
func confluentFramed(t *testing.T, v any, id uint32) []byte {
	t.Helper()
	soe, err := codec.Default().Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, soe[10:]...)
}

// TestConfluentFramingWithoutRegistry: with no schema registry configured
// (the default), a command in the Confluent wire format is dead-lettered
// with a reason that says what to configure, and the partition goes on.
func TestConfluentFramingWithoutRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	e.send(open("o", "cf-1", "EUR"))
	e.sendRaw("cf-1", confluentFramed(t, deposit("framed", "cf-1", 5), 42))
	e.send(deposit("after", "cf-1", 7))

	r := e.reader(e.names.Results)
	if got := answers(t, r, "cf-1", "after", 1)[0].res; got.Status != "ACCEPTED" || got.Version != 2 {
		t.Errorf("the command after it: %+v", got)
	}
	dlq := e.reader(e.names.DLQ).until("1 dead letter", func(rs []*kgo.Record) bool { return len(rs) >= 1 })
	if msg := headerOf(dlq[0], processor.HeaderError); !strings.Contains(msg, "Confluent wire format (schema id 42)") || !strings.Contains(msg, "SCHEMA_REGISTRY_URL") {
		t.Errorf("dlq reason %q", msg)
	}
}

// registerSchema registers the schema text under subject and returns its id.
func registerSchema(t *testing.T, cl *sr.Client, subject, text string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("register %s: %v", subject, err)
	}
	return uint32(s.ID)
}

func schemaText(t *testing.T, file string) string {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS, file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tcpGate forwards connections from addr to target while open; closed, it
// refuses them: a registry outage without touching the registry.
type tcpGate struct {
	addr, target string
	ln           net.Listener
}

func (g *tcpGate) open(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.ln = ln
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", g.target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

// TestConfluentFramingThroughRegistry, against a real Confluent-compatible
// registry (Apicurio's ccompat API): commands framed with registered ledger
// schemas are processed like single-object encoded ones; an id the registry
// does not know, or whose schema is not a ledger schema, is dead-lettered
// with its reason; while the registry cannot be reached nothing is
// dead-lettered, readiness fails after the stall timeout, and the command
// is processed once the registry is back.
func TestConfluentFramingThroughRegistry(t *testing.T) {
	base := testenv.SchemaRegistry(t)
	t.Parallel()
	cl, err := sr.NewClient(sr.URLs(base))
	if err != nil {
		t.Fatal(err)
	}
	subject := "test-" + testenv.ID(t) + "-"
	openID := registerSchema(t, cl, subject+"ledger.commands.OpenAccount", schemaText(t, "open_account.avsc"))
	depositID := registerSchema(t, cl, subject+"ledger.commands.DepositFunds", schemaText(t, "deposit_funds.avsc"))
	foreign := strings.Replace(schemaText(t, "deposit_funds.avsc"), `"fields": [`, `"fields": [{"name": "note", "type": "string", "default": ""},`, 1)
	if foreign == schemaText(t, "deposit_funds.avsc") {
		t.Fatal("could not derive a foreign schema")
	}
	foreignID := registerSchema(t, cl, subject+"other", foreign)

	t.Run("registered", func(t *testing.T) {
		e := newEnv(t)
		reg, err := codec.NewRegistry(codec.Default(), base, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.start("a", func(c *processor.Config) { c.Registry = reg })
		e.sendRaw("cf-2", confluentFramed(t, open("open", "cf-2", "EUR"), openID))
		e.sendRaw("cf-2", confluentFramed(t, deposit("dep", "cf-2", 5), depositID))
		e.sendRaw("cf-2", confluentFramed(t, deposit("foreign", "cf-2", 6), foreignID))
		e.sendRaw("cf-2", confluentFramed(t, deposit("unknown", "cf-2", 6), 987_654_321))
		e.send(deposit("after", "cf-2", 7))

		r := e.reader(e.names.Results)
		for _, c := range []struct {
			id      string
			version int64
		}{{"open", 1}, {"dep", 2}, {"after", 3}} {
			if got := answers(t, r, "cf-2", c.id, 1)[0].res; got.Status != "ACCEPTED" || got.Version != c.version {
				t.Errorf("%s: %+v, want accepted at version %d", c.id, got, c.version)
			}
		}
		dlq := e.reader(e.names.DLQ).until("2 dead letters", func(rs []*kgo.Record) bool { return len(rs) >= 2 })
		for i, want := range []string{fmt.Sprintf("schema id %d (ledger.commands.DepositFunds", foreignID), "schema id 987654321: the registry answered 404"} {
			if msg := headerOf(dlq[i], processor.HeaderError); !strings.Contains(msg, want) {
				t.Errorf("dead letter %d: %q, want it to name %q", i, msg, want)
			}
		}
	})

	t.Run("outage", func(t *testing.T) {
		e := newEnv(t)
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		gate := &tcpGate{addr: testenv.FreeAddr(t), target: u.Host}
		reg, err := codec.NewRegistry(codec.Default(), "http://"+gate.addr+u.Path, &http.Client{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		run := e.start("a", func(c *processor.Config) { c.Registry = reg; c.StallTimeout = 2 * time.Second })
		e.send(open("open", "cf-3", "EUR"))
		e.sendRaw("cf-3", confluentFramed(t, deposit("dep", "cf-3", 5), depositID))
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(200 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			err := run.p.Ready(ctx)
			cancel()
			if err != nil && strings.Contains(err.Error(), "schema registry") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readiness never reported the unreachable registry (last: %v)", err)
			}
		}
		gate.open(t)
		r := e.reader(e.names.Results)
		if got := answers(t, r, "cf-3", "dep", 1)[0].res; got.Status != "ACCEPTED" || got.Version != 2 {
			t.Errorf("after the outage: %+v, want accepted at version 2", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := run.p.Ready(ctx); err != nil {
			t.Errorf("ready after the outage: %v", err)
		}
		ends, err := kadm.NewClient(testenv.KafkaClient(t)).ListEndOffsets(ctx, e.names.DLQ)
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset != 0 {
				t.Errorf("dlq partition %d holds %d records; nothing may be dead-lettered during an outage", o.Partition, o.Offset)
			}
		})
	})
}
