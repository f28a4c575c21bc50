package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// rebuilder runs `projector rebuild` for one view.
//
// Both views follow the same steps: replay the events (Redis: and the
// command results) from offset 0 into a new generation with a partition
// consumer of its own (projector.Replay), to the high watermarks at start
// and then in catch-up passes; commit the final positions as the offsets of
// the new generation's live group; switch; drop the old generation.
//
//   - Redis: the new generation is the key prefix <prefix>g<N>:. The switch
//     is one SET of <prefix>current. Readers (redissink.Reader) and the live
//     projector (projector.Follower) poll the pointer; the live projector
//     leaves the old group and joins the new one, starting at the rebuild's
//     positions. The live projector never pauses. Once the old group is
//     empty and readers had time to see the pointer, the old generation's
//     keys are deleted with SCAN + UNLINK.
//   - ClickHouse: the new generation is the tables *_g<N>; readers keep
//     using the live names, so the switch is chsink.Swap (RENAME TABLE),
//     and nothing may write the live names across the rename. The rebuild
//     asks the live projectors to pause (a row in projector_generation),
//     waits for the old group to empty, replays the last records, commits
//     the positions for the new group, swaps, and un-pauses with the new
//     generation. Writes pause for about a second; reads never do.
//
// A rebuild holds its view's lock (lock.go) from start to end, so a second
// rebuild of the view is refused. If a ClickHouse rebuild dies mid-switch,
// the live projectors settle the switch from the tables once its lock has
// lapsed (watchGeneration), and so does the next rebuild.
type rebuilder struct {
	common
	log           *slog.Logger
	progress      bool
	switchTimeout time.Duration
}

// bar returns a progress callback for projector.ReplayConfig, or nil.
func (r rebuilder) bar(view string) (func(done, total int64), func()) {
	if !r.progress {
		return nil, func() {}
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
