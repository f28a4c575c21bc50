//go:build !race

package e2e

// raceEnabled: the test binary runs without the race detector, and so do
// the binaries it builds (benchmarks measure release builds).
const raceEnabled = false
