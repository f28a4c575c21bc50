package gateway

import (
	"strings"
	"testing"
	"time"
)

// hostileBodies are request bodies of about 1 MiB (the gateway's limit) in
// every shape that costs a parser something: each must be refused.
func hostileBodies() map[string]string {
	const n = 1<<20 - 256
	dep := `{"type":"DepositFunds","account_id":"a1",`
	return map[string]string{
		"fractional amount":  dep + `"amount":1.` + strings.Repeat("0", n) + `}`,
		"long exponent":      dep + `"amount":1e` + strings.Repeat("9", n) + `}`,
		"long string field":  dep + `"amount":5,"reference":"` + strings.Repeat("r", n) + `"}`,
		"escaped string":     dep + `"amount":5,"reference":"` + strings.Repeat(`\u00e9`, n/6) + `"}`,
		"nested arrays":      dep + `"amount":5,"reference":` + strings.Repeat("[", n/2) + strings.Repeat("]", n/2) + `}`,
		"many unknown keys":  dep + `"amount":5` + strings.Repeat(`,"k":1`, n/6) + `}`,
		"deep object":        dep + `"amount":5,"x":` + strings.Repeat(`{"a":`, n/5) + `1` + strings.Repeat("}", n/5) + `}`,
		"array of numbers":   `[` + strings.Repeat("1,", n/2) + `1]`,
		"huge account id":    `{"type":"DepositFunds","amount":5,"account_id":"` + strings.Repeat("a", n) + `"}`,
		"long command id":    dep + `"amount":5,"command_id":"` + strings.Repeat("c", n) + `"}`,
		"number as a string": dep + `"amount":"` + strings.Repeat("1", n) + `"}`,
	}
}

// TestHostileBodiesAreRefused: every hostile body is refused with a field
// error (speed: BenchmarkHostileBodies).
func TestHostileBodiesAreRefused(t *testing.T) {
	for name, body := range hostileBodies() {
		if cmd, ferr := parseCommand([]byte(body), time.Now()); ferr == nil {
			t.Errorf("%s: accepted as %+v", name, cmd)
		}
	}
}

// BenchmarkHostileBodies measures the CPU one refused ~1 MiB body costs the
// gateway's parser, per shape:
//
//	go test ./internal/ingest/gateway -run '^$' -bench HostileBodies -benchmem
func BenchmarkHostileBodies(b *testing.B) {
	for name, body := range hostileBodies() {
		data := []byte(body)
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for range b.N {
				if _, ferr := parseCommand(data, time.Now()); ferr == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
