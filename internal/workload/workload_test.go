package workload

import (
	"reflect"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

func TestGenerateIsReproducibleAndMixed(t *testing.T) {
	o := Options{Seed: 7, Accounts: 50, Commands: 5000}
	a, b := Generate(o), Generate(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same options, different streams")
	}
	if len(a) != 5050 {
		t.Fatalf("len %d, want 5050", len(a))
	}
	kinds := map[string]int{}
	dups := 0
	for _, c := range a {
		kinds[reflect.TypeOf(c.Value).Elem().Name()]++
		if c.Duplicate {
			dups++
		}
	}
	for _, k := range []string{"OpenAccount", "DepositFunds", "WithdrawFunds", "TransferFunds", "CloseAccount"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in %v", k, kinds)
		}
	}
	if dups == 0 {
		t.Error("no duplicates")
	}
	recs, err := Records("t", a[:100])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		v, err := codec.Default().Decode(r.Value)
		if err != nil || !reflect.DeepEqual(v, a[i].Value) || string(r.Key) != a[i].Key {
			t.Fatalf("record %d does not round-trip: %v", i, err)
		}
	}
}
