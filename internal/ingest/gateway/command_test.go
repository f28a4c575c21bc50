package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)

// The issue time is the gateway's clock truncated to milliseconds, the
// precision of timestamp-millis, so the record round-trips unchanged.
var wantIssued = time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)

func TestParseCommandValid(t *testing.T) {
	ev := int64(3)
	cases := []struct {
		name string
		json string
		want any
	}{
		{"open", `{"type":"OpenAccount","command_id":"c1","account_id":"a1","owner":"Ada","currency":"EUR","overdraft_limit":500,"correlation_id":"k"}`,
			&codec.OpenAccount{CommandID: "c1", AggregateID: "a1", CorrelationID: "k", IssuedAt: wantIssued, Owner: "Ada", Currency: "EUR", OverdraftLimit: 500}},
		{"open via aggregate_id, full type name, nulls", `{"type":"ledger.commands.OpenAccount","command_id":"c1","aggregate_id":"a1","owner":"Ada","currency":"USD","overdraft_limit":null,"expected_version":null,"correlation_id":null}`,
			&codec.OpenAccount{CommandID: "c1", AggregateID: "a1", IssuedAt: wantIssued, Owner: "Ada", Currency: "USD"}},
		{"deposit, exponent that is an exact integer", `{"type":"DepositFunds","command_id":"c2","account_id":"a1","aggregate_id":"a1","amount":1e3,"reference":"r","expected_version":3}`,
			&codec.DepositFunds{CommandID: "c2", AggregateID: "a1", ExpectedVersion: &ev, IssuedAt: wantIssued, Amount: 1000, Reference: "r"}},
		{"deposit, 2.50e2", `{"type":"DepositFunds","command_id":"c2","account_id":"a1","amount":2.50e2}`,
			&codec.DepositFunds{CommandID: "c2", AggregateID: "a1", IssuedAt: wantIssued, Amount: 250}},
		{"withdraw the largest amount", `{"type":"WithdrawFunds","command_id":"c3","account_id":"a1","amount":1000000000000000}`,
			&codec.WithdrawFunds{CommandID: "c3", AggregateID: "a1", IssuedAt: wantIssued, Amount: domain.MaxAmount}},
		{"transfer: aggregate is the source", `{"type":"TransferFunds","command_id":"c4","transfer_id":"t1","from_account_id":"a1","to_account_id":"a2","amount":7,"reference":"rent"}`,
			&codec.TransferFunds{CommandID: "c4", AggregateID: "a1", IssuedAt: wantIssued, TransferID: "t1", FromAccountID: "a1", ToAccountID: "a2", Amount: 7, Reference: "rent"}},
		{"transfer with matching aggregate_id", `{"type":"TransferFunds","command_id":"c4","aggregate_id":"a1","transfer_id":"t1","from_account_id":"a1","to_account_id":"a2","amount":7}`,
			&codec.TransferFunds{CommandID: "c4", AggregateID: "a1", IssuedAt: wantIssued, TransferID: "t1", FromAccountID: "a1", ToAccountID: "a2", Amount: 7}},
		{"close", `{"type":"CloseAccount","command_id":"c5","account_id":"a1","expected_version":0}`,
			&codec.CloseAccount{CommandID: "c5", AggregateID: "a1", ExpectedVersion: new(int64), IssuedAt: wantIssued}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd, ferr := parseCommand([]byte(c.json), testNow)
			if ferr != nil {
				t.Fatalf("parseCommand: %v", ferr)
			}
			got, _ := json.Marshal(cmd.record)
			want, _ := json.Marshal(c.want)
			if string(got) != string(want) {
				t.Fatalf("record\n got %s\nwant %s", got, want)
			}
			if cmd.aggregateID == "" || cmd.commandID == "" || !strings.HasPrefix(cmd.typ, "ledger.commands.") {
				t.Fatalf("command = %+v", cmd)
			}
			// It must encode and decode back to the same record.
			data, err := codec.Default().Encode(cmd.record)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			back, err := codec.Default().Decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if b, _ := json.Marshal(back); string(b) != string(want) {
				t.Fatalf("round trip\n got %s\nwant %s", b, want)
			}
		})
	}
}

func TestParseCommandAssignsCommandID(t *testing.T) {
	cmd, ferr := parseCommand([]byte(`{"type":"CloseAccount","account_id":"a1"}`), testNow)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if _, err := uuid.Parse(cmd.commandID); err != nil {
		t.Fatalf("assigned command id %q is not a UUID: %v", cmd.commandID, err)
	}
	if rec := cmd.record.(*codec.CloseAccount); rec.CommandID != cmd.commandID || !rec.IssuedAt.Equal(wantIssued) {
		t.Fatalf("record = %+v", rec)
	}
	other, _ := parseCommand([]byte(`{"type":"CloseAccount","account_id":"a1","command_id":null}`), testNow)
	if other.commandID == cmd.commandID {
		t.Fatal("two commands got the same id")
	}
}

func TestIntField(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"1e3", 1000, true}, {"1E3", 1000, true}, {"1e+3", 1000, true}, {"1.5e1", 15, true}, {"100.000", 100, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775808", 0, false}, {"1e19", 0, false}, {"9.3e18", 0, false},
		{"1.5", 0, false}, {"1e-1", 0, false}, {"0.1", 0, false},
		{"1e999999999", 0, false}, {"1e-999999999", 0, false}, {"0e999999999", 0, false},
		{`"100"`, 0, false}, {"true", 0, false}, {"[1]", 0, false}, {"{}", 0, false},
	} {
		got, ferr := intField("x", json.RawMessage(c.in))
		if (ferr == nil) != c.ok || got != c.want {
			t.Errorf("intField(%s) = %d, %v; want %d, ok=%v", c.in, got, ferr, c.want, c.ok)
		}
		if ferr != nil && ferr.Field != "x" {
			t.Errorf("intField(%s): field %q", c.in, ferr.Field)
		}
	}
}

// TestWaitersMatchTheirOwnCommand: regression of a waiter answered with
// another request's outcome (waiters were keyed by command id alone, and a
// recent-results cache answered a new request with an old outcome).
func TestWaitersMatchTheirOwnCommand(t *testing.T) {
	ws := newWaiters(3)
	got := func(w *waiter) *outcome {
		select {
		case o := <-w.ch:
			return o
		default:
			return nil
		}
	}

	// Same id, another account: not this waiter's.
	w, cancel := ws.register("acc-a", "k")
	ws.complete("acc-b", "k", "0/7", &outcome{version: 9})
	if o := got(w); o != nil {
		t.Fatalf("answered with another account's outcome %+v", o)
	}
	// A result that comes before the produce is acknowledged is kept, and
	// answers only if it names this waiter's record.
	ws.complete("acc-a", "k", "1/3", &outcome{version: 1})
	ws.complete("acc-a", "k", "1/4", &outcome{version: 2})
	ws.produced(w, 1, 4)
	if o := got(w); o == nil || o.version != 2 {
		t.Fatalf("outcome = %+v, want the one for 1/4", o)
	}
	cancel()

	// After the produce, only the result naming the record answers.
	w, cancel = ws.register("acc-a", "k")
	ws.produced(w, 1, 5)
	ws.complete("acc-a", "k", "1/4", &outcome{version: 2})
	if o := got(w); o != nil {
		t.Fatalf("answered with an earlier request's outcome %+v", o)
	}
	ws.complete("acc-a", "k", "1/5", &outcome{reason: "idempotency_key_reused"})
	if o := got(w); o == nil || o.reason != "idempotency_key_reused" {
		t.Fatalf("outcome = %+v", o)
	}
	cancel()
	if ws.count() != 0 {
		t.Fatalf("count = %d, want 0", ws.count())
	}

	// A result without a position (an older processor) answers every
	// waiter of its key.
	w, cancel = ws.register("acc-a", "old")
	ws.produced(w, 0, 1)
	ws.complete("acc-a", "old", "", &outcome{version: 4})
	if o := got(w); o == nil || o.version != 4 {
		t.Fatalf("outcome = %+v", o)
	}
	cancel()

	// Registrations are bounded; cancel frees a slot.
	w1, c1 := ws.register("a", "1")
	w2, c2 := ws.register("a", "1")
	w3, _ := ws.register("a", "2")
	if w1 == nil || w2 == nil || w3 == nil {
		t.Fatal("register refused below the bound")
	}
	if w4, _ := ws.register("b", "1"); w4 != nil {
		t.Fatal("register accepted beyond the bound")
	}
	c2()
	if ws.count() != 2 {
		t.Fatalf("count after cancel = %d, want 2", ws.count())
	}
	c1()
}

// kafkaPartition is where Kafka's default partitioner puts key
// (kafkax.KeyPartition, checked against Kafka's own vectors there).
func kafkaPartition(key string, partitions int) int32 {
	return kafkax.KeyPartition([]byte(key), int32(partitions))
}

// FuzzParseCommand: any input is either refused with a field error or
// becomes a record the codec encodes, with a non-empty key and command id.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"type":"OpenAccount","account_id":"a1","owner":"Ada","currency":"EUR","overdraft_limit":5}`,
		`{"type":"DepositFunds","account_id":"a1","amount":1e3,"expected_version":2}`,
		`{"type":"TransferFunds","transfer_id":"t","from_account_id":"a","to_account_id":"b","amount":1}`,
		`{"type":"CloseAccount","aggregate_id":"a1","command_id":"x","correlation_id":null}`,
		`{"type":"CreditTransfer"}`, `[1]`, `{"type":`, `{"type":"WithdrawFunds","account_id":"a","amount":-1.5e2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, ferr := parseCommand(data, testNow)
		if ferr != nil {
			if cmd != nil || ferr.Code == "" || ferr.Message == "" {
				t.Fatalf("refusal %+v with command %+v", ferr, cmd)
			}
			return
		}
		if cmd.commandID == "" || strings.TrimSpace(cmd.aggregateID) == "" {
			t.Fatalf("accepted %s as %+v", data, cmd)
		}
		if _, err := codec.Default().Encode(cmd.record); err != nil {
			t.Fatalf("accepted %s but cannot encode it: %v", data, err)
		}
	})
}
