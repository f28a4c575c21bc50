package cli

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressBar returns the progress callbacks of rebuild.Config for view:
// a bar on stderr, or nothing.
func progressBar(view string, show bool) (func(done, total int64), func()) {
	if !show {
		return nil, nil
	}
	b := progressbar.NewOptions64(-1,
		progressbar.OptionSetDescription("rebuild "+view),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)
	var max int64 = -1
	return func(done, total int64) {
			if total != max {
				max = total
				b.ChangeMax64(total)
			}
			_ = b.Set64(done)
		}, func() {
			_ = b.Finish()
			_, _ = os.Stderr.WriteString("\n")
		}
}
