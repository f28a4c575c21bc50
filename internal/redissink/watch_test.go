package redissink

import (
	"slices"
	"testing"
)

// TestWatchPatterns: the watcher subscribes to the change channels of the
// live generation and of every rebuilt one, and a prefix with glob
// characters matches itself only.
func TestWatchPatterns(t *testing.T) {
	for prefix, want := range map[string][]string{
		"ledger:":  {"ledger:changes", "ledger:g*:changes"},
		"a*b?[c]:": {`a\*b\?\[c\]:changes`, `a\*b\?\[c\]:g*:changes`},
	} {
		if got := NewWatcher(nil, prefix).patterns(); !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", prefix, got, want)
		}
	}
}
