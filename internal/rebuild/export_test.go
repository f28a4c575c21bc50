package rebuild

import "time"

// SetRenewEvery sets how often held locks renew, and returns the undo.
func SetRenewEvery(d time.Duration) func() {
	old := renewEvery
	renewEvery = d
	return func() { renewEvery = old }
}
