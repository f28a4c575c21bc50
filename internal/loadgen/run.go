package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// Options shape a run.
type Options struct {
	Workload    workload.Options
	Rate        float64       // commands/s to offer; 0 = as fast as Concurrency allows
	Concurrency int           // commands in flight at most
	Wait        time.Duration // gateway ?wait= per command (0: fire and forget, no latency figures)
	Visible     time.Duration // query API wait for min_version; 0 skips the visibility check
	Progress    io.Writer     // a line per second; nil for none
	// Observe, when set, sees every command's outcome (or error) as it
	// comes back, with when it was sent; calls are serialized.
	Observe func(cmd workload.Command, out Outcome, sent time.Time, err error)
}

// Report is what a run measured.
type Report struct {
	Sent, Accepted, Rejected, Pending, Errors int
	Invisible                                 int // accepted but not visible in the query API within Visible
	Elapsed                                   time.Duration
	Write                                     Latencies // send → outcome from the gateway
	EndToEnd                                  Latencies // send → visible through the query API
	Model                                     *Model
}

// Throughput is commands per second over the whole run.
func (r *Report) Throughput() float64 { return float64(r.Sent) / r.Elapsed.Seconds() }

// Run opens the workload's accounts, then offers the rest of its commands
// at the configured rate, recording outcomes into a Model.
func Run(ctx context.Context, c *Client, o Options) (*Report, error) {
	cmds := workload.Generate(o.Workload)
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	rep := &Report{Model: NewModel()}
	var mu sync.Mutex
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	var firstErr error

	send := func(cmd workload.Command) {
		defer wg.Done()
		defer func() { <-sem }()
		body, err := JSON(cmd.Value)
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
			return
		}
		start := time.Now()
		out, err := c.Send(ctx, body, o.Wait)
		wrote := time.Since(start)
		visible, vis := time.Duration(0), true
		if err == nil && out.Result == "accepted" && o.Visible > 0 {
			vis, err = c.WaitVisible(ctx, cmd.Key, out.Version, o.Visible)
			visible = time.Since(start)
		}
		mu.Lock()
		defer mu.Unlock()
		if o.Observe != nil {
			o.Observe(cmd, out, start, err)
		}
		rep.Sent++
		switch {
		case err != nil || out.Status >= 500 || out.Status == 0:
			rep.Errors++
			if firstErr == nil && err != nil && ctx.Err() == nil {
				firstErr = err
			}
			return
		case out.Result == "accepted":
			rep.Accepted++
			rep.Write.Add(wrote)
			if o.Visible > 0 {
				if vis {
					rep.EndToEnd.Add(visible)
				} else {
					rep.Invisible++
				}
			}
		case out.Result == "rejected":
			rep.Rejected++
			rep.Write.Add(wrote)
		default:
			rep.Pending++
		}
		rep.Model.Record(cmd, out)
	}

	start := time.Now()
	stopProgress := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					mu.Lock()
					el := time.Since(start)
					fmt.Fprintf(o.Progress, "%6.1fs  sent %7d  %7.0f/s  accepted %7d  rejected %6d  pending %5d  errors %4d  write p50 %-8s e2e p50 %-8s p99 %s\n",
						el.Seconds(), rep.Sent, float64(rep.Sent)/el.Seconds(), rep.Accepted, rep.Rejected, rep.Pending, rep.Errors,
						rep.Write.Percentile(50).Round(time.Millisecond), rep.EndToEnd.Percentile(50).Round(time.Millisecond),
						rep.EndToEnd.Percentile(99).Round(time.Millisecond))
					mu.Unlock()
				}
			}
		}()
	}
	// Accounts first: everything else needs them.
	opens := o.Workload.Accounts
	for i, cmd := range cmds {
		if i == opens {
			wg.Wait()
		}
		if i >= opens && o.Rate > 0 {
			due := start.Add(time.Duration(float64(i-opens) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go send(cmd)
	}
	wg.Wait()
	close(stopProgress)
	rep.Elapsed = time.Since(start)
	return rep, firstErr
}

// Model is an independent account of what the commands did, computed only
// from the gateway's outcomes (and the transfers' final status), to compare
// with what the query API shows.
type Model struct {
	Accounts  map[string]*ModelAccount
	Transfers map[string]*ModelTransfer
	Totals    map[string]*ModelTotals // by currency
}

// ModelAccount is an account as the outcomes imply.
type ModelAccount struct {
	Currency string
	Balance  int64
	Version  int64
	Closed   bool
}

// ModelTransfer is a transfer whose debit was accepted.
type ModelTransfer struct {
	From, To string
	Amount   int64
	Currency string
	Status   string // pending until Settle asks the query API
}

// ModelTotals are the money movements per currency.
type ModelTotals struct {
	Deposits, Withdrawals, TransfersOut, Credited, Refunded int64
	DepositCount, WithdrawalCount, TransferCount            int
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{Accounts: map[string]*ModelAccount{}, Transfers: map[string]*ModelTransfer{}, Totals: map[string]*ModelTotals{}}
}

func (m *Model) totals(cur string) *ModelTotals {
	t := m.Totals[cur]
	if t == nil {
		t = &ModelTotals{}
		m.Totals[cur] = t
	}
	return t
}

// Record applies one command's outcome. Repeated command ids (workload
// duplicates) are answered with the first outcome and change nothing.
func (m *Model) Record(cmd workload.Command, out Outcome) {
	if out.Result != "accepted" || cmd.Duplicate {
		return
	}
	acc := m.Accounts[cmd.Key]
	if acc == nil {
		acc = &ModelAccount{}
		m.Accounts[cmd.Key] = acc
	}
	acc.Version++
	switch c := cmd.Value.(type) {
	case *codec.OpenAccount:
		acc.Currency = c.Currency
	case *codec.DepositFunds:
		acc.Balance += c.Amount
		t := m.totals(acc.Currency)
		t.Deposits += c.Amount
		t.DepositCount++
	case *codec.WithdrawFunds:
		acc.Balance -= c.Amount
		t := m.totals(acc.Currency)
		t.Withdrawals += c.Amount
		t.WithdrawalCount++
	case *codec.TransferFunds:
		acc.Balance -= c.Amount
		m.Transfers[c.TransferID] = &ModelTransfer{From: c.FromAccountID, To: c.ToAccountID, Amount: c.Amount, Currency: acc.Currency, Status: "pending"}
		t := m.totals(acc.Currency)
		t.TransfersOut += c.Amount
		t.TransferCount++
	case *codec.CloseAccount:
		acc.Closed = true
	}
}

// Settle asks the query API for the final status of every transfer and
// applies the credits and refunds. It fails if a transfer is still pending
// after wait.
func (m *Model) Settle(ctx context.Context, c *Client, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for id, tr := range m.Transfers {
		for {
			var out struct {
				Status string `json:"status"`
			}
			code, err := c.Get(ctx, "/v1/transfers/"+url.PathEscape(id), nil, &out)
			if err == nil && code == 200 && (out.Status == "completed" || out.Status == "refunded") {
				tr.Status = out.Status
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("transfer %s: still %q (HTTP %d, %v) after %s", id, out.Status, code, err, wait)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t := m.totals(tr.Currency)
		switch tr.Status {
		case "completed":
			to := m.Accounts[tr.To]
			if to == nil {
				return fmt.Errorf("transfer %s completed to %s, which no accepted command opened", id, tr.To)
			}
			to.Balance += tr.Amount
			to.Version++
			t.Credited += tr.Amount
		case "refunded":
			from := m.Accounts[tr.From]
			from.Balance += tr.Amount
			from.Version++
			t.Refunded += tr.Amount
		}
	}
	return nil
}
