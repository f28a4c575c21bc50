package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/peterbourgon/ff/v3"
)

// TestPasswordFiles: each store's password can come from a file (a Docker
// secret), which wins over the plain variable whatever order they are
// read in, and loses its trailing newline; a missing file is an error.
func TestPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("KAFKA_SASL_PASSWORD", "from-env")
	t.Setenv("KAFKA_SASL_PASSWORD_FILE", write("kafka", "kafka-secret\n"))
	t.Setenv("REDIS_PASSWORD_FILE", write("redis", "redis-secret\r\n"))
	t.Setenv("CLICKHOUSE_PASSWORD", "from-env")
	t.Setenv("CLICKHOUSE_PASSWORD_FILE", write("ch", "ch-secret"))
	var k Kafka
	var r Redis
	var c ClickHouse
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	k.RegisterFlags(fs, "t")
	r.RegisterFlags(fs)
	c.RegisterFlags(fs)
	if err := ff.Parse(fs, nil, ff.WithEnvVars()); err != nil {
		t.Fatal(err)
	}
	if k.SASLPassword != "kafka-secret" || r.Password != "redis-secret" || c.Password != "ch-secret" {
		t.Fatalf("passwords %q %q %q, want the files' contents", k.SASLPassword, r.Password, c.Password)
	}
	// A command-line password given after the file does not win either.
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	k = Kafka{}
	k.RegisterFlags(fs, "t")
	if err := ff.Parse(fs, []string{"-kafka-sasl-password-file", filepath.Join(dir, "kafka")}, ff.WithEnvVars()); err != nil {
		t.Fatal(err)
	}
	if k.SASLPassword != "kafka-secret" {
		t.Fatalf("password %q, want the file's", k.SASLPassword)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(discard))
	k.RegisterFlags(fs, "t")
	if err := ff.Parse(fs, []string{"-kafka-sasl-password-file", filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing password file was accepted")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
