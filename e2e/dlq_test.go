package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

type dlqRecord struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Type      string `json:"type"`
	Error     string `json:"error"`
	Attempt   int    `json:"attempt"`
	Retried   bool   `json:"retried"`
}

// TestLedgerctlDLQ drives `ledgerctl dlq` against a running processor:
//   - a record that does not decode is dead-lettered; list and show find it
//     with its reason; a retry without --yes writes nothing; with --yes it
//     goes back to the commands topic, fails again, and comes back to the
//     DLQ as attempt 2, naming the record it retried; the same selection
//     then retries only the new record (the first is never retried twice);
//   - a valid command in the DLQ (as an older processor may have left one)
//     is retried and accepted;
//   - purge deletes a prefix only with --yes; bad input fails with a
//     message.
func TestLedgerctlDLQ(t *testing.T) {
	s := newStack(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ing := s.start("ingest", processorEnv, "serve")
	ing.waitReady(t, 60*time.Second)
	id := testenv.ID(t)

	ctl := func(args ...string) (string, error) { return s.run("ledgerctl", nil, args...) }
	list := func(args ...string) []dlqRecord {
		t.Helper()
		out, err := ctl(append([]string{"dlq", "list", "--output", "json"}, args...)...)
		if err != nil {
			t.Fatalf("dlq list: %v\n%s", err, out)
		}
		var ds []dlqRecord
		if err := json.Unmarshal([]byte(out), &ds); err != nil {
			t.Fatalf("dlq list: %v\n%s", err, out)
		}
		return ds
	}
	waitList := func(want int, args ...string) []dlqRecord {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ds := list(args...)
			if len(ds) >= want {
				return ds
			}
			if time.Now().After(deadline) {
				t.Fatalf("dlq list %v: %d records after 60 s, want %d", args, len(ds), want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	bad := id + "-bad"
	if err := s.client.ProduceSync(ctx, &kgo.Record{Topic: s.names.Commands, Key: []byte(bad), Value: []byte("not avro at all")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ds := waitList(1, "--key", bad)
	if d := ds[0]; len(ds) != 1 || !strings.Contains(d.Error, "decode") || d.Attempt != 1 || d.Retried {
		t.Fatalf("dead letter of the bad record: %+v", ds)
	}
	out, err := ctl("dlq", "show", "--partition", itoa(ds[0].Partition), "--offset", itoa(ds[0].Offset))
	if err != nil || !strings.Contains(out, "does not decode") || !strings.Contains(out, "source-offset") {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	out, err = ctl("dlq", "retry", "--key", bad)
	if err != nil || !strings.Contains(out, "would retry (dry run") {
		t.Fatalf("dry-run retry: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second)
	if ds := list("--key", bad); len(ds) != 1 || ds[0].Retried {
		t.Fatalf("the dry run wrote: %+v", ds)
	}
	if out, err := ctl("dlq", "retry", "--key", bad, "--yes"); err != nil || !strings.Contains(out, "retried 1 record") {
		t.Fatalf("retry: %v\n%s", err, out)
	}
	ds = waitList(2, "--key", bad)
	if len(ds) != 2 || !ds[0].Retried || ds[1].Attempt != 2 || ds[1].Retried {
		t.Fatalf("after the retry that failed again: %+v", ds)
	}
	out, err = ctl("dlq", "retry", "--key", bad, "--yes", "--output", "json")
	var rr struct {
		Retried []dlqRecord `json:"retried"`
		Skipped []struct {
			Offset int64  `json:"offset"`
			Why    string `json:"why"`
		} `json:"skipped"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rr) != nil || len(rr.Retried) != 1 || rr.Retried[0].Offset != ds[1].Offset ||
		len(rr.Skipped) != 1 || rr.Skipped[0].Offset != ds[0].Offset {
		t.Fatalf("second retry of the same selection: %v\n%s", err, out)
	}
	ds = waitList(3, "--key", bad)
	if ds[2].Attempt != 3 {
		t.Fatalf("third dead letter: %+v", ds)
	}

	// A valid command in the DLQ: retried and accepted.
	good := id + "-good"
	cmdID := id + "-open"
	val, err := codec.Default().Encode(&codec.OpenAccount{CommandID: cmdID, AggregateID: good, CorrelationID: cmdID,
		IssuedAt: time.Now().UTC().Truncate(time.Millisecond), Owner: "o", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.ProduceSync(ctx, &kgo.Record{Topic: s.names.DLQ, Key: []byte(good), Value: val, Headers: []kgo.RecordHeader{
		{Key: processor.HeaderError, Value: []byte("an old processor's bug")}, {Key: processor.HeaderType, Value: []byte("ledger.commands.OpenAccount")},
	}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, err = ctl("dlq", "show", "--partition", itoa(waitList(1, "--key", good)[0].Partition), "--offset", itoa(waitList(1, "--key", good)[0].Offset), "--output", "json")
	if err != nil || !strings.Contains(out, `"owner": "o"`) && !strings.Contains(out, `"owner":"o"`) {
		t.Fatalf("show of a command: %v\n%s", err, out)
	}
	if out, err := ctl("dlq", "retry", "--reason", "old processor", "--yes"); err != nil || !strings.Contains(out, "retried 1 record") {
		t.Fatalf("retry of a valid command: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := s.results(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := res[cmdID]; r != nil {
			if r.Status != "ACCEPTED" {
				t.Fatalf("retried command: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no result for the retried command after 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Purge: a dry run, then the prefix below the first bad record's
	// successor on its partition.
	p0 := ds[0].Partition
	out, err = ctl("dlq", "purge", "--before-offset", itoa(p0)+":"+itoa(ds[0].Offset+1))
	if err != nil || !strings.Contains(out, "would delete") {
		t.Fatalf("dry-run purge: %v\n%s", err, out)
	}
	if len(list("--key", bad)) != 3 {
		t.Fatal("the dry-run purge deleted")
	}
	if out, err := ctl("dlq", "purge", "--before-offset", itoa(p0)+":"+itoa(ds[0].Offset+1), "--yes"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	if got := list("--key", bad); len(got) != 2 || got[0].Offset == ds[0].Offset {
		t.Fatalf("after the purge: %+v", got)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "retry", "--yes"}, "selection: required"},
		{[]string{"dlq", "purge", "--yes"}, "exactly one of --before and --before-offset"},
		{[]string{"dlq", "purge", "--before-offset", "0:x"}, "want partition:offset"},
		{[]string{"dlq", "purge", "--before-offset", "99:1"}, "no such partition"},
		{[]string{"dlq", "list", "--since", "yesterday"}, "want an RFC 3339 time or a duration"},
		{[]string{"dlq", "show", "--partition", "0"}, "partition and offset: both required"},
		{[]string{"dlq", "show", "--partition", "0", "--offset", "999999"}, "no DLQ record at partition 0 offset 999999"},
		{[]string{"dlq", "list", "--output", "xml"}, `output "xml"`},
	} {
		if out, err := ctl(c.args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("ledgerctl %v: err %v, want a message with %q:\n%s", c.args, err, c.want, out)
		}
	}
	ing.stop(t)
}

func itoa[T int32 | int64](v T) string { return strconv.FormatInt(int64(v), 10) }
