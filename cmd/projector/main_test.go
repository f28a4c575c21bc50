package main

import (
	"strings"
	"testing"
)

// TestConfigErrors: both subcommands (and the flags-only form, which is
// serve) list every configuration problem before touching any service.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"flags only", []string{"-kafka-brokers", "nohostport", "-shutdown-timeout", "0s"}, []string{"kafka-brokers", "shutdown-timeout"}},
		{"serve, nothing on", []string{"serve", "-redis-projector=false", "-clickhouse-projector=false", "-max-batch", "0"}, []string{"both off", "max-batch"}},
		{"rebuild, no view", []string{"rebuild", "-kafka-brokers", "x"}, []string{"view \"\"", "kafka-brokers"}},
		{"rebuild, bad view", []string{"rebuild", "-view", "mongo", "-switch-timeout", "0s"}, []string{"view \"mongo\"", "switch-timeout"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(c.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
