package codec

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const goldenDir = "testdata/golden"

// testCatalog is NewCatalog() once per test binary; tests use it instead of Default()
// so that broken schemas fail with the error rather than a panic.
var testCatalog = sync.OnceValues(func() (*Catalog, error) { return NewCatalog() })

func catalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := testCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ts returns fixed instants with millisecond precision in UTC, the precision and
// zone in which timestamp-millis values come back from Decode.
func ts(offsetMillis int64) time.Time {
	return time.Date(2024, time.March, 1, 12, 30, 45, 123_000_000, time.UTC).Add(time.Duration(offsetMillis) * time.Millisecond)
}

func ptr[T any](v T) *T { return &v }

// goldenValues is one fixed record of every top-level type, keyed by full name. The
// values exercise both union branches of expected_version, non-ASCII text, negative
// and large amounts, both enum symbols and a multi-element array.
func goldenValues() []any {
	return []any{
		&OpenAccount{CommandID: "cmd-0001", AggregateID: "acc-alice", ExpectedVersion: nil, CorrelationID: "corr-1", IssuedAt: ts(0), Owner: "Alice Ænglund", Currency: "EUR", OverdraftLimit: 50_000},
		&DepositFunds{CommandID: "cmd-0002", AggregateID: "acc-alice", ExpectedVersion: ptr(int64(1)), CorrelationID: "corr-2", IssuedAt: ts(1), Amount: 125_00, Reference: "salary 2024-03"},
		&WithdrawFunds{CommandID: "cmd-0003", AggregateID: "acc-alice", ExpectedVersion: ptr(int64(2)), CorrelationID: "corr-3", IssuedAt: ts(2), Amount: 40_00, Reference: "atm"},
		&TransferFunds{CommandID: "cmd-0004", AggregateID: "acc-alice", CorrelationID: "corr-4", IssuedAt: ts(3), TransferID: "tr-1", FromAccountID: "acc-alice", ToAccountID: "acc-bob", Amount: 9_223_372_036_854_775_807, Reference: "rent"},
		&CreditTransfer{CommandID: "cmd-0005", AggregateID: "acc-bob", ExpectedVersion: ptr(int64(0)), CorrelationID: "corr-4", IssuedAt: ts(4), TransferID: "tr-1", FromAccountID: "acc-alice", ToAccountID: "acc-bob", Amount: 20_00, Currency: "EUR"},
		&RefundTransfer{CommandID: "cmd-0006", AggregateID: "acc-alice", CorrelationID: "corr-4", IssuedAt: ts(5), TransferID: "tr-1", ToAccountID: "acc-bob", Amount: 20_00, Currency: "EUR", Reason: "currency_mismatch"},
		&CloseAccount{CommandID: "cmd-0007", AggregateID: "acc-carol", ExpectedVersion: ptr(int64(-1)), CorrelationID: "", IssuedAt: ts(6)},
		&AccountOpened{EventID: "cmd-0001/0", AggregateID: "acc-alice", Version: 1, CommandID: "cmd-0001", CorrelationID: "corr-1", CausationID: "cmd-0001", OccurredAt: ts(10), Owner: "Alice Ænglund", Currency: "EUR", OverdraftLimit: 50_000},
		&FundsDeposited{EventID: "cmd-0002/0", AggregateID: "acc-alice", Version: 2, CommandID: "cmd-0002", CorrelationID: "corr-2", CausationID: "cmd-0002", OccurredAt: ts(11), Amount: 125_00, Currency: "EUR", BalanceAfter: 125_00, Reference: "salary 2024-03"},
		&FundsWithdrawn{EventID: "cmd-0003/0", AggregateID: "acc-alice", Version: 3, CommandID: "cmd-0003", CorrelationID: "corr-3", CausationID: "cmd-0003", OccurredAt: ts(12), Amount: 200_00, Currency: "EUR", BalanceAfter: -75_00, Reference: "atm"},
		&TransferDebited{EventID: "cmd-0004/0", AggregateID: "acc-alice", Version: 4, CommandID: "cmd-0004", CorrelationID: "corr-4", CausationID: "cmd-0004", OccurredAt: ts(13), TransferID: "tr-1", ToAccountID: "acc-bob", Amount: 20_00, Currency: "EUR", BalanceAfter: -95_00},
		&TransferCredited{EventID: "cmd-0005/0", AggregateID: "acc-bob", Version: 7, CommandID: "cmd-0005", CorrelationID: "corr-4", CausationID: "cmd-0005", OccurredAt: ts(14), TransferID: "tr-1", FromAccountID: "acc-alice", Amount: 20_00, Currency: "EUR", BalanceAfter: 1_000_20_00},
		&TransferRefunded{EventID: "cmd-0006/0", AggregateID: "acc-alice", Version: 5, CommandID: "cmd-0006", CorrelationID: "corr-4", CausationID: "cmd-0006", OccurredAt: ts(15), TransferID: "tr-1", ToAccountID: "acc-bob", Amount: 20_00, Currency: "EUR", BalanceAfter: -75_00, Reason: "currency_mismatch"},
		&AccountClosed{EventID: "cmd-0007/0", AggregateID: "acc-carol", Version: 9, CommandID: "cmd-0007", CorrelationID: "", CausationID: "cmd-0007", OccurredAt: ts(-86_400_000)},
		&AccountSnapshot{AggregateID: "acc-alice", Version: 5, Owner: "Alice Ænglund", Currency: "EUR", Balance: -75_00, OverdraftLimit: 50_000, Status: "OPEN", UpdatedAt: ts(15)},
		&CommandResult{CommandID: "cmd-0004", AggregateID: "acc-alice", CommandType: "ledger.commands.TransferFunds", CorrelationID: "corr-4", Status: "ACCEPTED", Version: 4,
			Events: []EventRef{{EventID: "cmd-0004/0", Type: "ledger.events.TransferDebited", Version: 4}, {EventID: "cmd-0004/1", Type: "ledger.commands.CreditTransfer", Version: 0}}, ProcessedAt: ts(16)},
	}
}

// fullName is the full Avro name of a generated value.
func fullName(v any) string { return goTypeOf(v).name }

func goTypeOf(v any) *goType {
	for _, t := range generatedTypes {
		if reflect.TypeOf(v) == t.ptr {
			return t
		}
	}
	panic(fmt.Sprintf("no generated type for %T", v))
}

func goldenPath(name string) string { return filepath.Join(goldenDir, name+".hex") }

// legacyGoldenDir holds the golden files as this package wrote them before it used
// the specification's fingerprints: the same bodies under the legacy headers.
const legacyGoldenDir = goldenDir + "/legacy"

// readGolden parses a hex.Dump file back into bytes.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	return readHexDump(t, goldenPath(name))
}

func readHexDump(t testing.TB, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for line := range strings.Lines(string(text)) {
		fields := strings.Fields(line)
		for _, f := range fields[min(1, len(fields)):] {
			if strings.HasPrefix(f, "|") {
				break
			}
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				t.Fatalf("%s: bad hex dump line %q", path, line)
			}
			out = append(out, b[0])
		}
	}
	return out
}

// TestGolden pins the wire format: the bytes of one fixed record of every type. A
// diff here means records written by this build differ from what is on the topics;
// if that is intended (a schema change, recorded in schemas/history), rerun with -update.
func TestGolden(t *testing.T) {
	c := catalog(t)
	seen := map[string]bool{}
	for _, v := range goldenValues() {
		name := fullName(v)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			got, err := c.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			dump := hex.Dump(got)
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(goldenPath(name), []byte(dump), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath(name))
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if dump != string(want) {
				t.Errorf("encoding of %s changed (run with -update if intended)\ngot:\n%s\nwant:\n%s", name, dump, want)
			}
			if parsed := readGolden(t, name); !bytes.Equal(parsed, got) {
				t.Errorf("readGolden(%s) does not parse back to the encoded bytes", name)
			}
			// The golden bytes decode to the same value, so the file is also a
			// decoding fixture for other implementations.
			back, err := c.Decode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, v) {
				t.Errorf("decoded golden %s:\n got %+v\nwant %+v", name, back, v)
			}
		})
	}
	for _, name := range c.Names() {
		if !seen[name] {
			t.Errorf("no golden value for %s: add one to goldenValues", name)
		}
	}
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	for _, f := range files {
		if !seen[strings.TrimSuffix(filepath.Base(f), ".hex")] {
			t.Errorf("%s belongs to no current schema: delete it", f)
		}
	}
}

// TestLegacyGoldenStillDecodes: records written before the ledger used the
// specification's fingerprints (the golden bytes of that release) decode to the same
// values as today's, and differ from today's bytes only in the fingerprint.
func TestLegacyGoldenStillDecodes(t *testing.T) {
	c := catalog(t)
	for _, v := range goldenValues() {
		name := fullName(v)
		t.Run(name, func(t *testing.T) {
			old := readHexDump(t, filepath.Join(legacyGoldenDir, name+".hex"))
			got, err := c.Decode(old)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v) {
				t.Errorf("decoded legacy %s:\n got %+v\nwant %+v", name, got, v)
			}
			now, err := c.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(old[:2], now[:2]) || !bytes.Equal(old[headerLen:], now[headerLen:]) || bytes.Equal(old[2:headerLen], now[2:headerLen]) {
				t.Errorf("legacy and current %s should differ in the fingerprint only:\n%x\n%x", name, old, now)
			}
		})
	}
}

// TestRoundTrip: every type survives Encode → Decode and Encode → DecodeInto, through
// the public API only.
func TestRoundTrip(t *testing.T) {
	c := catalog(t)
	for _, v := range goldenValues() {
		name := fullName(v)
		t.Run(name, func(t *testing.T) {
			data, err := c.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v) {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, v)
			}
			into, _ := NewValue(name)
			if err := c.DecodeInto(data, into); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(into, v) {
				t.Errorf("DecodeInto:\n got %+v\nwant %+v", into, v)
			}
			if n, err := c.Name(data); err != nil || n != name {
				t.Errorf("Name = %q, %v; want %q", n, err, name)
			}
			// AppendEncode appends exactly what Encode returns, also by value.
			prefix := []byte("prefix")
			appended, err := c.AppendEncode(prefix, reflect.ValueOf(v).Elem().Interface())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(appended[:len(prefix)], prefix) || !bytes.Equal(appended[len(prefix):], data) {
				t.Errorf("AppendEncode = %x, want prefix + %x", appended, data)
			}
		})
	}
}
