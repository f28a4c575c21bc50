package projection_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
)

func TestFromRecord(t *testing.T) {
	h := projectiontest.Generate(1, "", 3, 40)
	for _, e := range h.Events {
		b, err := codec.Default().Encode(e.Value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := projection.FromRecord(&kgo.Record{Value: b, Partition: 2, Offset: 9})
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != e.Type || got.EventID != e.EventID || got.Version != e.Version || got.AggregateID != e.AggregateID ||
			!got.OccurredAt.Equal(e.OccurredAt) || got.Partition != 2 || got.Offset != 9 {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
	cases := []struct {
		name string
		rec  *kgo.Record
		want error
	}{
		{"tombstone", &kgo.Record{Key: []byte("a/1")}, projection.ErrTombstone},
		{"garbage", &kgo.Record{Value: []byte("not avro")}, codec.ErrMalformed},
		{"command on the events topic", &kgo.Record{Value: mustEncode(t, &codec.DepositFunds{CommandID: "c"})}, projection.ErrUnknownEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := projection.FromRecord(c.rec); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Default().Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransferConvergesInAnyOrder(t *testing.T) {
	h := projectiontest.Generate(3, "", 6, 300)
	byTransfer := map[string][]projection.Event{}
	for _, e := range h.Events {
		if tv, ok := projection.TransferOf(e); ok {
			byTransfer[tv.TransferID] = append(byTransfer[tv.TransferID], e)
		}
	}
	for id, evs := range byTransfer {
		for _, order := range [][]projection.Event{evs, reverse(evs)} {
			var cur projection.TransferView
			ok := false
			for _, e := range order {
				if next, changed := projection.NextTransfer(cur, ok, e); changed {
					cur, ok = next, true
				}
			}
			if cur != h.Transfers[id] {
				t.Fatalf("transfer %s: got %+v, want %+v", id, cur, h.Transfers[id])
			}
		}
	}
}

func reverse(in []projection.Event) []projection.Event {
	out := make([]projection.Event, len(in))
	for i, e := range in {
		out[len(in)-1-i] = e
	}
	return out
}

func TestGuard(t *testing.T) {
	cases := []struct {
		name            string
		stored, version int64
		want            int
	}{
		{"first", 0, 1, projection.Applies},
		{"next", 4, 5, projection.Applies},
		{"same", 5, 5, projection.Duplicate},
		{"older", 5, 2, projection.Duplicate},
		{"gap", 5, 7, projection.Gap},
		{"unknown account, not first", 0, 2, projection.Gap},
	}
	for _, c := range cases {
		if got := projection.Guard(c.stored, c.version); got != c.want {
			t.Errorf("%s: Guard(%d,%d)=%d, want %d", c.name, c.stored, c.version, got, c.want)
		}
	}
}

// TestEventTypeNames: the views name the events independently of the write
// side's domain package (the read side does not import it); the names must
// still be the same, and each must be a schema the codec knows.
func TestEventTypeNames(t *testing.T) {
	names := map[string]bool{}
	for _, n := range codec.Default().Names() {
		names[n] = true
	}
	for _, pair := range [][2]string{
		{projection.TypeAccountOpened, domain.TypeAccountOpened},
		{projection.TypeFundsDeposited, domain.TypeFundsDeposited},
		{projection.TypeFundsWithdrawn, domain.TypeFundsWithdrawn},
		{projection.TypeTransferDebited, domain.TypeTransferDebited},
		{projection.TypeTransferCredited, domain.TypeTransferCredited},
		{projection.TypeTransferRefunded, domain.TypeTransferRefunded},
		{projection.TypeAccountClosed, domain.TypeAccountClosed},
	} {
		if pair[0] != pair[1] {
			t.Errorf("projection names %q, the domain %q", pair[0], pair[1])
		}
		if !names[pair[0]] {
			t.Errorf("%q is not a schema in the codec catalog", pair[0])
		}
	}
}
