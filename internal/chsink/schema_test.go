package chsink

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden DDL files in testdata")

// ddlText renders everything this package would run for o: the live and a
// rebuild generation's schema and the swap to that generation.
func ddlText(o Options) string {
	var b strings.Builder
	section := func(title string, stmts []string) {
		b.WriteString("-- " + title + "\n")
		for _, s := range stmts {
			b.WriteString(s + ";\n\n")
		}
	}
	section("schema, generation 0", Schema(o))
	o2 := o
	o2.Generation = 2
	section("schema, generation 2", Schema(o2))
	section("swap to generation 2, live tables exist", SwapStatements(o, 2, true))
	section("swap to generation 2, no live tables", SwapStatements(o, 2, false))
	return b.String()
}

// TestDDLGolden pins the DDL for one server and for a cluster; refresh with
// go test ./internal/chsink -run TestDDLGolden -update.
func TestDDLGolden(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"single", Options{Database: "ledger"}},
		{"cluster", Options{Database: "ledger", Cluster: "ledger_cluster"}},
		{"cluster_custom_zk", Options{Database: "ledger", Cluster: "c1", ZKPath: "/ch/{shard}/ledger/{table}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.opts.Validate(); err != nil {
				t.Fatal(err)
			}
			got := ddlText(c.opts)
			path := filepath.Join("testdata", "ddl_"+c.name+".sql")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("DDL differs from %s (rerun with -update if intended):\n%s", path, got)
			}
		})
	}
}

func TestDDLClusterParts(t *testing.T) {
	single := strings.Join(Schema(Options{Database: "ledger"}), "\n")
	cluster := strings.Join(Schema(Options{Database: "ledger", Cluster: "c1"}), "\n")
	for _, bad := range []string{"ON CLUSTER", "Replicated", "{replica}"} {
		if strings.Contains(single, bad) {
			t.Errorf("single-server DDL contains %q", bad)
		}
	}
	for _, want := range []string{
		"ON CLUSTER c1",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/ledger_events_local', '{replica}', version)",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ledger/account_balances_local', '{replica}', version)",
		"ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/ledger/volume_hourly_local', '{replica}', (events, volume, net, inflow_e9, inflow_rest, outflow_e9, outflow_rest))",
		// Reads and writes go through the contract names, sharded by account.
		"CREATE TABLE IF NOT EXISTS ledger.ledger_events ON CLUSTER c1 AS ledger.ledger_events_local\nENGINE = Distributed(c1, ledger, ledger_events_local, cityHash64(aggregate_id))",
		"CREATE TABLE IF NOT EXISTS ledger.account_balances ON CLUSTER c1 AS ledger.account_balances_local\nENGINE = Distributed(c1, ledger, account_balances_local, cityHash64(account_id))",
		"TO ledger.volume_hourly_local AS",
		"FROM ledger.ledger_events_local\n",
	} {
		if !strings.Contains(cluster, want) {
			t.Errorf("cluster DDL lacks %q", want)
		}
	}
	for _, s := range Schema(Options{Database: "ledger", Cluster: "c1"}) {
		if !strings.Contains(s, "ON CLUSTER c1") {
			t.Errorf("statement without ON CLUSTER: %s", firstLine(s))
		}
	}
	for _, s := range SwapStatements(Options{Database: "ledger", Cluster: "c1"}, 3, true) {
		if !strings.Contains(s, "ON CLUSTER c1") {
			t.Errorf("swap statement without ON CLUSTER: %s", firstLine(s))
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"full", Options{Database: "ledger", Generation: 3, BatchRows: 10, Cluster: "c"}, true},
		{"injected database", Options{Database: "x; DROP TABLE y"}, false},
		{"bad cluster", Options{Cluster: "a b"}, false},
		{"negative generation", Options{Generation: -1}, false},
		{"quote in zk path", Options{ZKPath: "/a'"}, false},
	}
	for _, c := range cases {
		if err := c.opts.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestTableNames(t *testing.T) {
	if e, b, v := TableNames(0); e != "ledger_events" || b != "account_balances" || v != "volume_hourly" {
		t.Errorf("generation 0: %s %s %s", e, b, v)
	}
	if e, b, v := TableNames(2); e != "ledger_events_g2" || b != "account_balances_g2" || v != "volume_hourly_g2" {
		t.Errorf("generation 2: %s %s %s", e, b, v)
	}
}
