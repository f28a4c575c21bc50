package processor

import (
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestCommandConversion: every codec command converts to the domain command
// of the same Avro name, envelope included; other records are not commands.
func TestCommandConversion(t *testing.T) {
	ev := int64(3)
	for _, v := range []any{
		&codec.OpenAccount{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.DepositFunds{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.WithdrawFunds{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.TransferFunds{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.CreditTransfer{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.RefundTransfer{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
		&codec.CloseAccount{CommandID: "c", AggregateID: "a", ExpectedVersion: &ev, CorrelationID: "k", IssuedAt: at},
	} {
		b, err := codec.Default().Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := codec.Default().Name(b)
		c, ok := toCommand(v)
		if !ok || c.Type() != name {
			t.Fatalf("%T: converted to %T (ok=%v), want %s", v, c, ok, name)
		}
		env := c.Env()
		if env.CommandID != "c" || env.AggregateID != "a" || *env.ExpectedVersion != 3 || env.CorrelationID != "k" || !env.IssuedAt.Equal(at) {
			t.Errorf("%s: envelope %+v", name, env)
		}
	}
	for _, v := range []any{&codec.AccountOpened{}, &codec.AccountSnapshot{}, &codec.CommandResult{}, nil} {
		if _, ok := toCommand(v); ok {
			t.Errorf("%T converted to a command", v)
		}
	}
}

// TestEventConversion: every event Decide can emit converts to the codec
// record of the same Avro name, and encodes.
func TestEventConversion(t *testing.T) {
	env := func(id string) domain.Envelope { return domain.Envelope{CommandID: id, AggregateID: "a", IssuedAt: at} }
	var events []domain.Event
	s := domain.Account{}
	for _, c := range []domain.Command{
		&domain.OpenAccount{Envelope: env("1"), Owner: "x", Currency: "EUR"},
		&domain.DepositFunds{Envelope: env("2"), Amount: 100},
		&domain.WithdrawFunds{Envelope: env("3"), Amount: 10},
		&domain.TransferFunds{Envelope: env("4"), TransferID: "t", FromAccountID: "a", ToAccountID: "b", Amount: 10},
		&domain.CreditTransfer{Envelope: env("5"), TransferID: "t", FromAccountID: "b", ToAccountID: "a", Amount: 10, Currency: "EUR"},
		&domain.RefundTransfer{Envelope: env("6"), TransferID: "t", FromAccountID: "a", ToAccountID: "b", Amount: 10, Currency: "EUR"},
		&domain.WithdrawFunds{Envelope: env("7"), Amount: 100},
		&domain.CloseAccount{Envelope: env("8")},
	} {
		d := domain.Decide(s, c)
		if d.Rejection != nil {
			t.Fatalf("%s: %v", c.Type(), d.Rejection)
		}
		events = append(events, d.Events...)
		s = domain.Fold(s, d.Events)
		for _, sc := range d.Commands {
			v, err := fromSagaCommand(sc)
			if err != nil {
				t.Fatal(err)
			}
			b, err := codec.Default().Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if name, _ := codec.Default().Name(b); name != sc.Type() {
				t.Errorf("saga command %s encoded as %s", sc.Type(), name)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range events {
		v, err := fromEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := codec.Default().Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if name, _ := codec.Default().Name(b); name != e.Type() {
			t.Errorf("event %s encoded as %s", e.Type(), name)
		}
		seen[e.Type()] = true
	}
	if len(seen) != 7 {
		t.Errorf("covered %d event types, want 7", len(seen))
	}
}

// TestSnapshotRoundTrip: an account survives snapshot encoding (times at
// millisecond precision, as the schema stores them), except its owner,
// which snapshots leave out (personal data; see toSnapshot).
func TestSnapshotRoundTrip(t *testing.T) {
	for _, a := range []domain.Account{
		{ID: "a", Owner: "o", Currency: "EUR", Balance: -5, OverdraftLimit: 10, Status: domain.StatusOpen, Version: 7, UpdatedAt: at},
		{ID: "b", Owner: "p", Currency: "JPY", Balance: 3, Status: domain.StatusClosed, Version: 2, UpdatedAt: at.Add(time.Millisecond)},
	} {
		b, err := codec.Default().Encode(toSnapshot(a))
		if err != nil {
			t.Fatal(err)
		}
		var s codec.AccountSnapshot
		if err := codec.Default().DecodeInto(b, &s); err != nil {
			t.Fatal(err)
		}
		got, err := fromSnapshot(&s)
		if err != nil {
			t.Fatal(err)
		}
		if s.Owner != "" {
			t.Errorf("snapshot of %s holds the owner %q", a.ID, s.Owner)
		}
		want := a
		want.Owner = ""
		if got != want {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
	for _, s := range []codec.AccountSnapshot{
		{AggregateID: "a", Version: 1, Status: "FROZEN"},
		{AggregateID: "", Version: 1, Status: "OPEN"},
		{AggregateID: "a", Version: 0, Status: "OPEN"},
	} {
		if _, err := fromSnapshot(&s); err == nil {
			t.Errorf("snapshot %+v accepted", s)
		}
	}
}

func TestConfig(t *testing.T) {
	c := Config{Kafka: config.Kafka{Brokers: "127.0.0.1:9092", TopicPrefix: "ledger."}}.withDefaults()
	if c.Group != "ledger.processor" || c.DedupeWindow != 24*time.Hour || c.MaxBatch != DefaultMaxBatch || c.InstanceID == "" || c.Log == nil {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	bad := Config{Kafka: config.Kafka{Brokers: "nope"}, DedupeWindow: -time.Second, MaxBatch: -1}
	err := bad.Validate()
	for _, want := range []string{"kafka-brokers", "dedupe window", "max batch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(bad); err == nil {
		t.Error("New accepted a bad config")
	}
}
