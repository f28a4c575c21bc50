package projector

import "time"

// SetLagEvery changes how often the lag gauge is read from the broker, for
// the duration of a test.
func SetLagEvery(d time.Duration) func() {
	old := lagEvery
	lagEvery = d
	return func() { lagEvery = old }
}
