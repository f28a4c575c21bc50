package redissink

import "testing"

func TestGenerationOf(t *testing.T) {
	for _, c := range []struct {
		key string
		gen int
		ok  bool
	}{
		{"ledger:{acc-1}:account", 0, true},
		{"ledger:g3:{acc-1}:tx", 3, true},
		{"ledger:current", 0, false},
		{"ledger:gx:{a}:account", 0, false},
		{"ledger:g0:{a}:account", 0, false},
		{"other:{a}:account", 0, false},
		{"ledger:something:{a}", 0, false},
	} {
		gen, ok := generationOf("ledger:", c.key)
		if gen != c.gen || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.key, gen, ok, c.gen, c.ok)
		}
	}
}
