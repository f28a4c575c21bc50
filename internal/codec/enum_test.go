package codec

import (
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
)

// TestEnumSymbols: the enum constants are the symbols of the schemas.
func TestEnumSymbols(t *testing.T) {
	c := catalog(t)
	for _, e := range []struct {
		record, field string
		want          []string
	}{
		{"ledger.results.CommandResult", "status", []string{StatusAccepted, StatusRejected}},
		{"ledger.snapshots.AccountSnapshot", "status", []string{AccountStatusOpen, AccountStatusClosed}},
	} {
		s, _ := c.Schema(e.record)
		var got []string
		for _, f := range s.(*avro.RecordSchema).Fields() {
			if f.Name() == e.field {
				got = f.Type().(*avro.EnumSchema).Symbols()
			}
		}
		if !slices.Equal(got, e.want) {
			t.Errorf("%s.%s: symbols %v, constants %v", e.record, e.field, got, e.want)
		}
	}
}
