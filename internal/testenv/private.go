package testenv

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartRedis launches a private redis-server for t on a free port, with its
// data (append-only file) in t.TempDir(), so a test can stop and restart
// its own Redis without disturbing other tests. stop shuts it down
// (SIGTERM: the append-only file is flushed) and start launches it again on
// the same port and data; both wait until done and are no-ops when already
// in that state. The server is stopped when t ends. Without a redis-server
// binary the test fails when CI is set and is skipped otherwise.
func StartRedis(t testing.TB) (addr string, stop, start func()) {
	t.Helper()
	SkipIfUnitOnly(t, "redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server", "apt-get install redis-server")
	}
	port := freePort(t)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"),
	}
	s := &server{t: t, name: "redis-server", bin: bin, args: args, addr: addr, log: filepath.Join(dir, "redis.log"), ready: redisPing}
	s.start()
	t.Cleanup(s.stop)
	return addr, s.stop, s.start
}

// missing fails (CI) or skips t because a server binary is not installed.
func missing(t testing.TB, bin, install string) {
	t.Helper()
	SkipIfUnitOnly(t, bin)
	msg := fmt.Sprintf("%s not found in PATH; install it (%s) or run `scripts/stack up`", bin, install)
	if inCI() {
		t.Fatalf("%s (CI is set, so a missing service is a failure)", msg)
	}
	t.Skip(msg)
}

// FreeAddr returns a loopback host:port nothing listens on right now, for a
// server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is one private server process that can be stopped and started again.
type server struct {
	t     testing.TB
	name  string
	bin   string
	args  []string
	addr  string
	log   string
	ready func(addr string) error
	// startTimeout bounds how long start waits for ready; default 15s.
	startTimeout time.Duration

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.OpenFile(s.log+".out", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("%s: %v", s.name, err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("%s: start: %v", s.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	timeout := s.startTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		err := s.ready(s.addr)
		if err == nil {
			break
		}
		select {
		case <-done:
			s.t.Fatalf("%s exited at start: %s", s.name, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			s.t.Fatalf("%s did not answer on %s within %s: %v\n%s", s.name, s.addr, timeout, err, s.logTail())
		}
	}
	s.cmd, s.done = cmd, done
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// kill ends the server's process group with SIGKILL, as a crash would, and
// waits for it; a no-op when it is not running.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd, s.done = nil, nil
}

func (s *server) logTail() string {
	var b strings.Builder
	for _, f := range []string{s.log, s.log + ".out"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "---- %s\n%s\n", f, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return b.String()
}

// redisPing answers nil when a Redis server on addr replies +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// StartClickHouse launches a private clickhouse-server for t (the local
// stack's configuration from scripts/clickhouse, with free ports and its
// data in t.TempDir()), so a test can stop and restart its own ClickHouse.
// addr is the native host:port; stop and start behave as StartRedis's.
// Without a clickhouse-server binary the test fails when CI is set and is
// skipped otherwise.
func StartClickHouse(t testing.TB) (addr string, stop, start func()) {
	t.Helper()
	SkipIfUnitOnly(t, "clickhouse-server")
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		missing(t, "clickhouse-server", "apt-get install clickhouse-server")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"logs", "clickhouse", "data/clickhouse"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tcp, httpPort := freePort(t), freePort(t)
	tmpl, err := os.ReadFile(filepath.Join(root, "scripts", "clickhouse", "config.xml"))
	if err != nil {
		t.Fatalf("clickhouse config template: %v", err)
	}
	cfg := strings.NewReplacer("@DIR@", dir, "@TCP_PORT@", strconv.Itoa(tcp), "@HTTP_PORT@", strconv.Itoa(httpPort)).Replace(string(tmpl))
	users, err := os.ReadFile(filepath.Join(root, "scripts", "clickhouse", "users.xml"))
	if err != nil {
		t.Fatalf("clickhouse users template: %v", err)
	}
	cfgPath := filepath.Join(dir, "clickhouse", "config.xml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// A private server's users have no password (the local stack fills
	// in the SHA-256 of generated ones).
	users = regexp.MustCompile(`<password_sha256_hex>@[A-Z]+_SHA256@</password_sha256_hex>`).ReplaceAll(users, []byte("<password></password>"))
	if err := os.WriteFile(filepath.Join(dir, "clickhouse", "users.xml"), users, 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	s := &server{
		t: t, name: "clickhouse-server", bin: bin, args: []string{"--config-file=" + cfgPath},
		addr: httpAddr, log: filepath.Join(dir, "logs", "clickhouse-server.err.log"),
		ready: clickHousePing, startTimeout: 60 * time.Second,
	}
	s.start()
	t.Cleanup(s.stop)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp)), s.stop, s.start
}

// clickHousePing answers nil when the HTTP interface on addr says "Ok.".
func clickHousePing(addr string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/ping: %s", resp.Status)
	}
	return nil
}

// repoRoot finds the module root (the directory holding go.mod) from the
// working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
