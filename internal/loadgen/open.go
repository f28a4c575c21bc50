package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/cqrs-ledger/ledger/internal/workload"
)

// Open-loop load, the wrk2 way: commands are sent on a schedule at the
// offered rate whatever the latency (no sender waits for an answer before
// the next send), and every latency is measured from the command's
// scheduled send time, so a stall shows in the figures instead of slowing
// the offered load down (no coordinated omission).

// Modes of OpenOptions.
const (
	ModeSingle = "single" // one command per POST /v1/commands
	ModeBatch  = "batch"  // BatchSize commands per POST /v1/commands:batch
)

// OpenOptions shape an open-loop run.
type OpenOptions struct {
	Workload workload.Options // its Accounts are opened first (not measured), its Commands offered
	Rate     float64          // commands/s offered (> 0)
	Mode     string           // ModeSingle (default) or ModeBatch
	// BatchSize is the commands per request in ModeBatch; default 100.
	BatchSize int
	// Wait is the gateway's ?wait= and Visible the query API's wait for
	// min_version; both default to 10 s.
	Wait, Visible time.Duration
	// MaxInFlight stops the run (overloaded) when more commands than this
	// are outstanding; default 50,000.
	MaxInFlight int
	Progress    io.Writer // a line per second; nil for none
	// Kafka is where ModeKafka produces; required in that mode only.
	Kafka KafkaTarget
}

// OpenReport is what an open-loop run measured.
type OpenReport struct {
	Offered          float64       // commands/s
	Scheduled, Sent  int           // commands scheduled and sent
	Accepted         int           // accepted by the ledger
	Rejected         int           // rejected by a business rule (a normal outcome)
	Pending, Errors  int           // no outcome within Wait; transport or 5xx errors
	Invisible        int           // accepted, not visible within Visible
	Overloaded       bool          // stopped at MaxInFlight outstanding commands
	Elapsed          time.Duration // from the first scheduled send to the last answer
	Outcome, Visible *hdrhistogram.Histogram
}

// Throughput is commands answered per second.
func (r *OpenReport) Throughput() float64 {
	return float64(r.Accepted+r.Rejected) / r.Elapsed.Seconds()
}

// Percentile of h in time.Duration (h records microseconds).
func Percentile(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// RunOpen opens the workload's accounts (closed loop, not measured), then
// offers its commands open-loop at o.Rate.
func RunOpen(ctx context.Context, c *Client, o OpenOptions) (*OpenReport, error) {
	if o.Rate <= 0 {
		return nil, fmt.Errorf("loadgen: open-loop rate %v: must be > 0", o.Rate)
	}
	if o.Mode == "" {
		o.Mode = ModeSingle
	}
	if o.Mode != ModeSingle && o.Mode != ModeBatch && o.Mode != ModeKafka {
		return nil, fmt.Errorf("loadgen: mode %q: want %s, %s or %s", o.Mode, ModeSingle, ModeBatch, ModeKafka)
	}
	if o.Mode == ModeKafka && (o.Kafka.Client == nil || o.Kafka.Commands == "" || o.Kafka.Results == "") {
		return nil, fmt.Errorf("loadgen: %s mode needs a Kafka client and the commands and results topics", ModeKafka)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Mode != ModeBatch {
		o.BatchSize = 1
	}
	if o.Wait <= 0 {
		o.Wait = 10 * time.Second
	}
	if o.Visible <= 0 {
		o.Visible = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 50_000
	}
	cmds := workload.Generate(o.Workload)
	opens, rest := cmds[:o.Workload.Accounts], cmds[o.Workload.Accounts:]
	if err := openAccounts(ctx, c, opens, o.Wait); err != nil {
		return nil, err
	}

	var res *results
	if o.Mode == ModeKafka {
		var err error
		if res, err = followResults(ctx, o.Kafka); err != nil {
			return nil, fmt.Errorf("loadgen: follow the command results: %w", err)
		}
		defer res.cl.Close()
	}
	rep := &OpenReport{Offered: o.Rate, Outcome: newHistogram(), Visible: newHistogram()}
	var mu sync.Mutex
	var inFlight atomic.Int64
	var wg sync.WaitGroup
	record := func(scheduled time.Time, out Outcome, account string, err error) {
		outcomeAt := time.Now()
		visible := true
		if err == nil && out.Result == "accepted" {
			visible, err = c.WaitVisible(ctx, account, out.Version, o.Visible)
		}
		visibleAt := time.Now()
		mu.Lock()
		defer mu.Unlock()
		rep.Sent++
		switch {
		case err != nil || out.Status >= 500 || out.Status == 0 || out.Error != "":
			rep.Errors++
		case out.Result == "accepted":
			rep.Accepted++
			_ = rep.Outcome.RecordValue(outcomeAt.Sub(scheduled).Microseconds())
			if visible {
				_ = rep.Visible.RecordValue(visibleAt.Sub(scheduled).Microseconds())
			} else {
				rep.Invisible++
			}
		case out.Result == "rejected":
			rep.Rejected++
			_ = rep.Outcome.RecordValue(outcomeAt.Sub(scheduled).Microseconds())
		default:
			rep.Pending++
		}
	}
	send := func(scheduled time.Time, batch []workload.Command) {
		defer wg.Done()
		defer inFlight.Add(-int64(len(batch)))
		if o.Mode == ModeKafka {
			out, err := res.sendKafka(ctx, o.Kafka, batch[0], o.Wait)
			record(scheduled, out, batch[0].Key, err)
			return
		}
		bodies := make([]map[string]any, len(batch))
		for i, cmd := range batch {
			b, err := JSON(cmd.Value)
			if err != nil {
				record(scheduled, Outcome{}, cmd.Key, err)
				return
			}
			bodies[i] = b
		}
		if o.Mode == ModeSingle {
			out, err := c.Send(ctx, bodies[0], o.Wait)
			record(scheduled, out, batch[0].Key, err)
			return
		}
		outs, err := c.SendBatch(ctx, bodies, o.Wait)
		var wgv sync.WaitGroup
		for i, cmd := range batch {
			var out Outcome
			if err == nil && i < len(outs) {
				out = outs[i]
			}
			wgv.Go(func() { record(scheduled, out, cmd.Key, err) })
		}
		wgv.Wait()
	}

	start := time.Now()
	stop := make(chan struct{})
	if o.Progress != nil {
		go progress(o.Progress, start, stop, &mu, rep, &inFlight)
	}
	interval := time.Duration(float64(o.BatchSize) / o.Rate * float64(time.Second))
	for i := 0; i < len(rest); i += o.BatchSize {
		scheduled := start.Add(time.Duration(i/o.BatchSize) * interval)
		if d := time.Until(scheduled); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		batch := rest[i:min(i+o.BatchSize, len(rest))]
		if inFlight.Load()+int64(len(batch)) > int64(o.MaxInFlight) {
			rep.Overloaded = true
			break
		}
		mu.Lock()
		rep.Scheduled += len(batch)
		mu.Unlock()
		inFlight.Add(int64(len(batch)))
		wg.Add(1)
		go send(scheduled, batch)
	}
	wg.Wait()
	close(stop)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func progress(w io.Writer, start time.Time, stop <-chan struct{}, mu *sync.Mutex, rep *OpenReport, inFlight *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		mu.Lock()
		el := time.Since(start)
		fmt.Fprintf(w, "%6.1fs  scheduled %7d  answered %7d (%6.0f/s)  in flight %6d  errors %4d  outcome p99 %-8s visible p50 %-8s p99 %s\n",
			el.Seconds(), rep.Scheduled, rep.Accepted+rep.Rejected, float64(rep.Accepted+rep.Rejected)/el.Seconds(),
			inFlight.Load(), rep.Errors, Percentile(rep.Outcome, 99).Round(time.Millisecond),
			Percentile(rep.Visible, 50).Round(time.Millisecond), Percentile(rep.Visible, 99).Round(time.Millisecond))
		mu.Unlock()
	}
}

// openAccounts opens the accounts, a few at a time, before the measured run.
func openAccounts(ctx context.Context, c *Client, opens []workload.Command, wait time.Duration) error {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, cmd := range opens {
		body, err := JSON(cmd.Value)
		if err != nil {
			return err
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := c.Send(ctx, body, wait)
			if err == nil && out.Result != "accepted" && out.Result != "rejected" {
				err = fmt.Errorf("open %s: HTTP %d %s %s", cmd.Key, out.Status, out.Result, out.Error)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// SendBatch posts commands to the batch endpoint and waits up to wait for
// their outcomes; the outcomes are in the order of cmds.
func (c *Client) SendBatch(ctx context.Context, cmds []map[string]any, wait time.Duration) ([]Outcome, error) {
	u := c.IngestURL + "/v1/commands:batch"
	if wait > 0 {
		u += "?wait=" + wait.String()
	}
	var resp struct {
		Results []struct {
			Index int `json:"index"`
			Outcome
		} `json:"results"`
	}
	code, err := c.do(ctx, http.MethodPost, u, c.Tokens.Write, cmds, &resp)
	if err != nil {
		return nil, err
	}
	outs := make([]Outcome, len(cmds))
	for _, r := range resp.Results {
		if r.Index >= 0 && r.Index < len(outs) {
			outs[r.Index] = r.Outcome
			outs[r.Index].Status = code
		}
	}
	return outs, nil
}
