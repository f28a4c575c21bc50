package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestOpenLoopKeepsTheSchedule: against a gateway stand-in that takes
// 150 ms per answer, the open-loop runner still sends every command on its
// schedule (a closed loop of one would send 7 a second) and measures the
// latency from the scheduled time. Each API gets its own token.
func TestOpenLoopKeepsTheSchedule(t *testing.T) {
	var posts, maxConcurrent, cur, wrongToken atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := "Bearer write-token"
		if r.Method == http.MethodGet {
			want = "Bearer read-token"
		}
		if r.Header.Get("Authorization") != want {
			wrongToken.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/v1/accounts/") {
			_ = json.NewEncoder(w).Encode(map[string]any{"version": 1})
			return
		}
		n := cur.Add(1)
		defer cur.Add(-1)
		for m := maxConcurrent.Load(); n > m && !maxConcurrent.CompareAndSwap(m, n); m = maxConcurrent.Load() {
		}
		posts.Add(1)
		time.Sleep(150 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "accepted", "version": 1})
	}))
	defer srv.Close()
	cl := NewClient(srv.URL, srv.URL, Tokens{Write: "write-token", Read: "read-token"}, 512)
	rep, err := RunOpen(context.Background(), cl, OpenOptions{
		Workload: workload.Options{Seed: 1, Accounts: 2, Commands: 200, IDPrefix: "t-"},
		Rate:     200,
		Wait:     time.Second, Visible: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scheduled != 200 || rep.Sent != 200 || rep.Accepted != 200 || rep.Errors != 0 {
		t.Fatalf("report %+v", rep)
	}
	if n := wrongToken.Load(); n > 0 {
		t.Errorf("%d requests with the wrong token", n)
	}
	if p50 := Percentile(rep.Outcome, 50); p50 < 150*time.Millisecond {
		t.Errorf("outcome p50 %s, but every answer took 150 ms", p50)
	}
	if maxConcurrent.Load() < 10 {
		t.Errorf("at most %d requests at once: the sends waited for answers (closed loop)", maxConcurrent.Load())
	}
}

// TestCPUSinceCountsRestartedProcesses: a process that started during the
// run counts from zero, never negative.
func TestCPUSinceCountsRestartedProcesses(t *testing.T) {
	before := CPU{byPID: map[int]procCPU{10: {"kafka", 50}, 11: {"redis", 3}}}
	after := CPU{byPID: map[int]procCPU{20: {"kafka", 2}, 11: {"redis", 4}}}
	d := after.Since(before)
	if d.ByRole["kafka"] != 2 || d.ByRole["redis"] != 1 {
		t.Fatalf("%v, want kafka 2 (restarted) and redis 1", d.ByRole)
	}
}
