package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkRecovery measures how long the pipeline stalls when a processor
// or a projector is killed with SIGKILL and restarted at once with the same
// instance id (static group membership, KIP-345): from the kill to the
// first command accepted over HTTP (which needs a committed transaction),
// and from the kill of the projector to the first newly accepted deposit
// visible through the query API. Each iteration kills both once:
//
//	go test ./e2e -run '^$' -bench Recovery -benchtime 5x -timeout 20m
func BenchmarkRecovery(b *testing.B) {
	s := newStack(b, 4)
	env := storesEnv(b)
	ingestEnv := append(slices.Clone(env), "PROCESSOR_INSTANCE=recovery-ingest")
	projEnv := append(slices.Clone(env), "PROJECTOR_INSTANCE=recovery-projector")
	ingest := s.start("ingest", ingestEnv, "serve")
	projector := s.start("projector", projEnv)
	query := s.start("queryapi", env)
	for _, p := range []*proc{ingest, projector, query} {
		p.waitReady(b, 90*time.Second)
	}
	post := func(addr string, body map[string]any) (int, map[string]any, error) {
		raw, _ := json.Marshal(body)
		resp, err := apiPost("http://"+addr+"/v1/commands?wait=2s", "application/json", bytes.NewReader(raw))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, err
	}
	seq := 0
	// accepted sends deposits (new ids) until one is accepted, and returns
	// the account's version after it.
	accepted := func(addr string, deadline time.Time) (float64, error) {
		for time.Now().Before(deadline) {
			seq++
			code, out, err := post(addr, map[string]any{"type": "DepositFunds", "command_id": fmt.Sprintf("rec-d%d", seq), "account_id": "rec-1", "amount": 1})
			if err == nil && code == http.StatusOK && out["status"] == "accepted" {
				return out["version"].(float64), nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return 0, fmt.Errorf("no command accepted before the deadline")
	}
	if code, out, err := post(ingest.addr, map[string]any{"type": "OpenAccount", "command_id": "rec-open", "account_id": "rec-1", "owner": "R", "currency": "EUR"}); err != nil || code != http.StatusOK {
		b.Fatalf("open: %d %v %v", code, out, err)
	}

	visible := func(version float64, deadline time.Time) {
		for {
			resp, err := apiGet(fmt.Sprintf("http://%s/v1/accounts/rec-1?min_version=%d&wait=1s", query.addr, int64(version)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("deposit never visible\n%s", tail(projector.logs.String(), 30))
			}
		}
	}
	var toAccepted, toVisible []time.Duration
	b.ResetTimer()
	for range b.N {
		ingest.kill(b)
		killed := time.Now()
		ingest = s.start("ingest", ingestEnv, "serve")
		if _, err := accepted(ingest.addr, killed.Add(2*time.Minute)); err != nil {
			b.Fatalf("after the processor's restart: %v\n%s", err, tail(ingest.logs.String(), 30))
		}
		toAccepted = append(toAccepted, time.Since(killed))
		if os.Getenv("LEDGER_BENCH_LOGS") != "" {
			b.Logf("killed at %s; restarted ingest:\n%s", killed.Format(time.RFC3339Nano), tail(ingest.logs.String(), 12))
		}

		// The projector is killed idle (its last write done): a kill in the
		// middle of a write makes the restart wait for that write's
		// announced deadline (WRITE_DEADLINE + 1 s), which is measured
		// apart (see the README).
		v, err := accepted(ingest.addr, time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		visible(v, time.Now().Add(time.Minute))
		time.Sleep(300 * time.Millisecond) // and its command outcome written
		projector.kill(b)
		killed = time.Now()
		projector = s.start("projector", projEnv)
		version, err := accepted(ingest.addr, killed.Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		visible(version, killed.Add(2*time.Minute))
		toVisible = append(toVisible, time.Since(killed))
		if d := time.Since(killed); d > time.Second {
			b.Logf("slow projector restart (%s); its log:\n%s", d.Round(time.Millisecond), tail(projector.logs.String(), 15))
		}
	}
	b.StopTimer()
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		b.ReportMetric(ds[len(ds)/2].Seconds(), name+"-p50-s")
		b.ReportMetric(ds[len(ds)-1].Seconds(), name+"-max-s")
		b.Logf("%s: %v", name, ds)
	}
	report("kill-to-accepted", toAccepted)
	report("kill-to-visible", toVisible)
}
