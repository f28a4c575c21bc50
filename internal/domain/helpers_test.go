package domain

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// t0 is the issued_at of every command in the table tests.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func ptr(v int64) *int64 { return &v }

func env(cmdID, agg string) Envelope {
	return Envelope{CommandID: cmdID, AggregateID: agg, CorrelationID: "corr-1", IssuedAt: t0}
}

func envV(cmdID, agg string, expected int64) Envelope {
	e := env(cmdID, agg)
	e.ExpectedVersion = ptr(expected)
	return e
}

func openAcct(id, cur string, balance, overdraft, version int64) Account {
	return Account{
		ID: id, Owner: "Ada Lovelace", Currency: cur, Balance: balance, OverdraftLimit: overdraft,
		Status: StatusOpen, Version: version, UpdatedAt: t0.Add(-time.Hour),
	}
}

func closedAcct(id, cur string, balance, version int64) Account {
	a := openAcct(id, cur, balance, 0, version)
	a.Status = StatusClosed
	return a
}

// evMeta is the metadata of the single event a command with cmdID decides on
// aggregate agg at version; the id format "<command id>/1" is the contract.
func evMeta(cmdID, agg string, version int64) EventMeta {
	return EventMeta{
		EventID: EventID(agg, version), AggregateID: agg, Version: version,
		CommandID: cmdID, CorrelationID: "corr-1", CausationID: cmdID, OccurredAt: t0,
	}
}

type decideCase struct {
	name  string
	state Account
	cmd   Command

	// accepted
	events   []Event
	commands []Command // saga commands, also for a rejected credit
	// rejected
	reason  Reason
	msgHint string // substring the message must contain (the field at fault)
}

// reasonsSeen and conflictsSeen record, across the table tests, which
// reasons were produced and which command types were rejected for a version
// conflict, so TestDecide can prove every reason is reachable.
type coverage struct {
	reasons   map[Reason]bool
	conflicts map[string]bool
	cases     int
}

func runDecideCases(t *testing.T, cov *coverage, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cov.cases++
			before := cloneCommand(tc.cmd)
			got := Decide(tc.state, tc.cmd)

			if again := Decide(tc.state, tc.cmd); !reflect.DeepEqual(got, again) {
				t.Fatalf("Decide is not deterministic:\n first %s\nsecond %s", dump(got), dump(again))
			}
			if !reflect.DeepEqual(before, tc.cmd) {
				t.Fatalf("Decide mutated its command:\nbefore %#v\n after %#v", before, tc.cmd)
			}

			if tc.reason == "" {
				if got.Rejection != nil {
					t.Fatalf("rejected %s: %s, want accepted", got.Rejection.Reason, got.Rejection.Message)
				}
				if got.Err() != nil {
					t.Fatalf("Err() = %v for an accepted decision", got.Err())
				}
				if !reflect.DeepEqual(got.Events, tc.events) {
					t.Fatalf("events:\n got %s\nwant %s", dump(got.Events), dump(tc.events))
				}
			} else {
				if got.Rejection == nil {
					t.Fatalf("accepted with %s, want rejection %s", dump(got.Events), tc.reason)
				}
				if got.Rejection.Reason != tc.reason {
					t.Fatalf("reason = %s (%s), want %s", got.Rejection.Reason, got.Rejection.Message, tc.reason)
				}
				if !strings.Contains(got.Rejection.Message, tc.msgHint) {
					t.Fatalf("message %q does not mention %q", got.Rejection.Message, tc.msgHint)
				}
				if len(got.Events) != 0 {
					t.Fatalf("rejection with events %s", dump(got.Events))
				}
				cov.reasons[tc.reason] = true
				if tc.reason == ReasonVersionConflict {
					cov.conflicts[tc.cmd.Type()] = true
				}
			}
			if !reflect.DeepEqual(got.Commands, tc.commands) {
				t.Fatalf("saga commands:\n got %s\nwant %s", dump(got.Commands), dump(tc.commands))
			}
		})
	}
}

// cloneCommand returns a deep copy of c, to detect mutation by Decide.
func cloneCommand(c Command) Command {
	if c == nil {
		return nil
	}
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return c
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	if f := cp.Elem().FieldByName("ExpectedVersion"); f.IsValid() && !f.IsNil() {
		f.Set(reflect.ValueOf(ptr(f.Elem().Int())))
	}
	return cp.Interface().(Command)
}

// dump renders decisions, events and commands readably in failure messages
// (plain %v would print pointers).
func dump(v any) string {
	var b strings.Builder
	dumpValue(&b, reflect.ValueOf(v))
	return b.String()
}

func dumpValue(b *strings.Builder, v reflect.Value) {
	switch v.Kind() {
	case reflect.Invalid:
		b.WriteString("nil")
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			b.WriteString("&")
		}
		dumpValue(b, v.Elem())
	case reflect.Slice:
		b.WriteString("[")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			dumpValue(b, v.Index(i))
		}
		b.WriteString("]")
	case reflect.Struct:
		if t, ok := v.Interface().(interface{ String() string }); ok && v.Type().PkgPath() == "time" {
			b.WriteString(t.String())
			return
		}
		b.WriteString(v.Type().Name() + "{")
		for i := range v.NumField() {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(v.Type().Field(i).Name + ":")
			dumpValue(b, v.Field(i))
		}
		b.WriteString("}")
	default:
		fmt.Fprintf(b, "%#v", v.Interface())
	}
}
