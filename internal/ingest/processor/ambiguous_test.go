package processor_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestCommitAnsweredWithAnError: regression of an ambiguous commit taken
// for an abort. The broker commits a transaction and then answers its
// EndTxn with UNKNOWN_SERVER_ERROR; franz-go's End then reports (false,
// nil). The processor used to treat that as a clean abort and decide the
// rewound batch again against stale state, writing its events twice. Now it
// asks the group coordinator, applies the committed batch, and answers the
// rewound commands as repeats: every command's events exist once.
func TestCommitAnsweredWithAnError(t *testing.T) {
	lie := &endTxnLiar{}
	k := newKfakeLedger(t, "amb.", 3, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return &liarListener{Listener: l, lie: lie}, nil
	}))
	kcfg, names, cl := k.kafka, k.names, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Lie about the commit of the third transaction that commits
	// anything, and the eighth.
	lie.arm(3, 8)
	cmds := workload.Generate(workload.Options{Seed: 11, Accounts: 40, Commands: 600, IDPrefix: "a-"})
	if err := workload.Produce(ctx, cl, names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := processor.New(processor.Config{Kafka: kcfg, InstanceID: "a", Log: testLogger(t), MaxBatch: 50, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	for {
		select {
		case err := <-done:
			t.Fatalf("processor stopped: %v", err)
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if k.settled(t, ctx) {
			break
		}
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("processor: %v", err)
	}
	if n := lie.told.Load(); n != 2 {
		t.Fatalf("the broker lied about %d commits, want 2", n)
	}

	l := k.checkExactlyOnce(t, ctx, cmds)
	t.Log(l.Summary())
}

// endTxnLiar rewrites the answers to chosen EndTxn commits into
// UNKNOWN_SERVER_ERROR after the broker has committed them.
type endTxnLiar struct {
	mu      sync.Mutex
	commits int          // EndTxn commit requests seen
	which   map[int]bool // which of them to lie about (1-based)
	told    atomic.Int32
}

func (l *endTxnLiar) arm(which ...int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.which = map[int]bool{}
	for _, w := range which {
		l.which[w] = true
	}
}

// liarListener hands out connections that watch requests and rewrite
// responses.
type liarListener struct {
	net.Listener
	lie *endTxnLiar
}

func (l *liarListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &liarConn{Conn: c, lie: l.lie, lieTo: map[int32]int16{}}, nil
}

// liarConn parses the Kafka frames kfake reads (requests) and rewrites the
// frames it writes (kfake writes one whole response per Write).
type liarConn struct {
	net.Conn
	lie   *endTxnLiar
	in    []byte
	mu    sync.Mutex
	lieTo map[int32]int16 // correlation id → EndTxn version, for the responses to rewrite
}

func (c *liarConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in = append(c.in, b[:n]...)
	for len(c.in) >= 4 {
		size := int(binary.BigEndian.Uint32(c.in))
		if len(c.in) < 4+size {
			break
		}
		c.request(c.in[4 : 4+size])
		c.in = c.in[4+size:]
	}
	return n, err
}

// request notes an EndTxn commit that is to be lied about.
func (c *liarConn) request(frame []byte) {
	if len(frame) < 10 || int16(binary.BigEndian.Uint16(frame)) != int16(kmsg.EndTxn) {
		return
	}
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := int32(binary.BigEndian.Uint32(frame[4:]))
	req := kmsg.NewPtrEndTxnRequest()
	req.SetVersion(version)
	body := frame[8:]
	if n := int16(binary.BigEndian.Uint16(body)); n > 0 { // client id
		body = body[2+int(n):]
	} else {
		body = body[2:]
	}
	if req.IsFlexible() {
		body = body[1:] // no tagged header fields from franz-go
	}
	if err := req.ReadFrom(body); err != nil || !req.Commit {
		return
	}
	c.lie.mu.Lock()
	c.lie.commits++
	lie := c.lie.which[c.lie.commits]
	c.lie.mu.Unlock()
	if lie {
		c.mu.Lock()
		c.lieTo[corr] = version
		c.mu.Unlock()
	}
}

func (c *liarConn) Write(b []byte) (int, error) {
	if len(b) < 8 {
		return c.Conn.Write(b)
	}
	corr := int32(binary.BigEndian.Uint32(b[4:]))
	c.mu.Lock()
	version, ok := c.lieTo[corr]
	delete(c.lieTo, corr)
	c.mu.Unlock()
	if !ok {
		return c.Conn.Write(b)
	}
	resp := kmsg.NewPtrEndTxnResponse()
	resp.SetVersion(version)
	head := 8
	if resp.IsFlexible() {
		head++
	}
	if err := resp.ReadFrom(b[head:]); err != nil || resp.ErrorCode != 0 {
		return c.Conn.Write(b) // not a commit the broker did: leave it
	}
	resp.ErrorCode = kerr.UnknownServerError.Code
	out := resp.AppendTo(append([]byte(nil), b[:head]...))
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	c.lie.told.Add(1)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// TestStalledCommitFailsReadiness: regression of a processor hung inside
// GroupTransactSession.End (after a broker restart) while /readyz kept
// saying ready. Here the broker holds an EndTxn without answering: Ready
// reports the stall after StallTimeout, and once the broker answers the
// processor goes on and is ready again.
func TestStalledCommitFailsReadiness(t *testing.T) {
	k := newKfakeLedger(t, "stall.", 2)
	cluster, kcfg, names, cl := k.cluster, k.kafka, k.names, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := processor.New(processor.Config{Kafka: kcfg, InstanceID: "s", Log: testLogger(t), StallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var once sync.Once
	cluster.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		once.Do(func() { cluster.SleepControl(func() { <-release }) })
		return nil, nil, false
	})
	cmds := workload.Generate(workload.Options{Seed: 3, Accounts: 5, Commands: 20, IDPrefix: "s-"})
	if err := workload.Produce(ctx, cl, names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := p.Ready(rctx)
		rcancel()
		if err != nil && strings.Contains(err.Error(), "stalled") {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("Ready never reported the stall")
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(release)
	for {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := p.Ready(rctx)
		rcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not ready after the broker answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
