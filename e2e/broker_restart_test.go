package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestBrokerRestartsAreRiddenOut: regression of one broker restart hanging
// the processor for good (blocked in GroupTransactSession.End while the
// group waited for a rebalance the batch blocked) with /readyz still
// saying ready. A private broker, under a steady stream of commands, is
// killed with SIGKILL and started again after 1 s and after 10 s, then
// stopped cleanly and started after 10 s (LEDGER_LONG_TESTS adds a 60 s
// outage). Each time the gateway, the processor and the projector must
// resume by themselves: a probe command is accepted over HTTP and becomes
// visible through the query API (the time it took is logged; the bound here
// is only a liveness limit). At the end every command has exactly one
// outcome and its events once, and both views equal the events.
func TestBrokerRestartsAreRiddenOut(t *testing.T) {
	k := testenv.StartKafka(t)
	s := newStackAt(t, k.Addr, 4)
	v := newViews(t, "")
	env := v.env()
	ingest := s.start("ingest", append(slices.Clone(env), "PROCESSOR_INSTANCE=ingest-1"), "serve")
	projector := s.start("projector", append(slices.Clone(env), "PROJECTOR_INSTANCE=projector-1"))
	query := s.start("queryapi", env)
	for _, p := range []*proc{ingest, projector, query} {
		p.waitReady(t, 90*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// A steady stream straight to Kafka, 200 commands/s; the producer
	// waits while the broker is away (franz-go retries, idempotently).
	cmds := workload.Generate(workload.Options{Seed: 10, Accounts: 150, Commands: 9000, IDPrefix: "br-"})
	recs, err := workload.Records(s.names.Commands, cmds)
	if err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(recs); i += 20 {
			<-tick.C
			if err := s.client.ProduceSync(ctx, recs[i:min(i+20, len(recs))]...).FirstErr(); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	probe := 0
	post := func(body map[string]any) (int, map[string]any) {
		raw, _ := json.Marshal(body)
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+ingest.addr+"/v1/commands?wait=3s", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiTokens.Write)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post(map[string]any{"type": "OpenAccount", "command_id": "probe-open", "account_id": "probe", "owner": "P", "currency": "EUR"}); code != http.StatusOK {
		t.Fatalf("open the probe account: %d %v", code, out)
	}
	// resumed waits until a new deposit is accepted over HTTP and then
	// visible through the query API, and returns how long each took.
	resumed := func(since time.Time) (accepted, visible time.Duration) {
		deadline := since.Add(3 * time.Minute) // a liveness bound, not a speed target
		var version float64
		for {
			probe++
			code, out := post(map[string]any{"type": "DepositFunds", "command_id": fmt.Sprintf("probe-%d", probe), "account_id": "probe", "amount": 1})
			if code == http.StatusOK && out["status"] == "accepted" {
				version = out["version"].(float64)
				accepted = time.Since(since)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no command accepted %s after the broker came back (last answer %d %v)\ningest:\n%s", time.Since(since), code, out, tail(ingest.logs.String(), 40))
			}
			time.Sleep(100 * time.Millisecond)
		}
		for {
			resp, err := apiGet(fmt.Sprintf("http://%s/v1/accounts/probe?min_version=%d&wait=1s", query.addr, int64(version)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return accepted, time.Since(since)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the probe deposit is not visible %s after the broker came back\nprojector:\n%s", time.Since(since), tail(projector.logs.String(), 40))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	phases := []struct {
		name string
		down func()
		for_ time.Duration
	}{
		{"SIGKILL, back after 1 s", k.Kill, time.Second},
		{"SIGKILL, back after 10 s", k.Kill, 10 * time.Second},
		{"clean stop, back after 10 s", k.Stop, 10 * time.Second},
	}
	if os.Getenv("LEDGER_LONG_TESTS") != "" {
		phases = append(phases, struct {
			name string
			down func()
			for_ time.Duration
		}{"SIGKILL, back after 60 s", k.Kill, time.Minute})
	}
	for _, ph := range phases {
		time.Sleep(3 * time.Second) // under load
		ph.down()
		time.Sleep(ph.for_)
		k.Start()
		back := time.Now()
		accepted, visible := resumed(back)
		t.Logf("%s: first command accepted %s and visible %s after the broker was back", ph.name,
			accepted.Round(time.Millisecond), visible.Round(time.Millisecond))
		if accepted > 20*time.Second {
			// Not a failure (no timed assertions): the log says where the time went.
			t.Logf("slow to resume; ingest's log:\n%s", tail(ingest.logs.String(), 80))
		}
	}

	if err := <-produced; err != nil {
		t.Fatalf("producing the workload: %v", err)
	}
	l := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	s.checkExactlyOnce(ctx, l, cmds)
	v.waitExact(t, ctx, l, 2*time.Minute)
	for _, p := range []*proc{ingest, projector, query} {
		p.stop(t)
	}
}
