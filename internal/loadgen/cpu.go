package loadgen

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU is the CPU time (user + system, seconds) of the stack's processes by
// role (kafka, redis, clickhouse, ingest, projector, queryapi, ledgerload),
// read from /proc, and of the whole machine.
type CPU struct {
	ByRole map[string]float64
	// byPID is each process's time, so that Since counts a process
	// restarted during the run from its start (a process that ended during
	// the run is not counted: /proc no longer has it).
	byPID map[int]procCPU
	// Busy and Total are the machine's busy and total CPU seconds (all
	// cores) from /proc/stat: Busy/Total is its utilisation.
	Busy, Total float64
}

type procCPU struct {
	role string
	secs float64
}

// clockTicks is USER_HZ, the unit of /proc times (100 on Linux/amd64).
const clockTicks = 100

// SampleCPU reads the CPU times now; processes it cannot read are skipped.
func SampleCPU() CPU {
	c := CPU{ByRole: map[string]float64{}, byPID: map[int]procCPU{}}
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		role := roleOf(d, pid == self)
		if role == "" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" that ends the command name: utime and
		// stime are the 12th and 13th.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		c.ByRole[role] += (u + s) / clockTicks
		c.byPID[pid] = procCPU{role, (u + s) / clockTicks}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			c.Total += n / clockTicks
			if i != 3 && i != 4 { // idle, iowait
				c.Busy += n / clockTicks
			}
		}
	}
	return c
}

func roleOf(dir string, self bool) string {
	if self {
		return "ledgerload"
	}
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return ""
	}
	name := strings.TrimSpace(string(comm))
	switch {
	case name == "redis-server":
		return "redis"
	case strings.HasPrefix(name, "clickhouse"):
		return "clickhouse"
	case name == "ingest", name == "projector", name == "queryapi":
		return name
	case name == "java":
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		if bytes.Contains(cmd, []byte("kafka.Kafka")) {
			return "kafka"
		}
	}
	return ""
}

// Since is the CPU used between before and c, by the processes alive at c.
func (c CPU) Since(before CPU) CPU {
	d := CPU{ByRole: map[string]float64{}, Busy: c.Busy - before.Busy, Total: c.Total - before.Total}
	for pid, p := range c.byPID {
		prev := before.byPID[pid]
		if prev.role != p.role { // a new process, or the pid reused
			prev.secs = 0
		}
		d.ByRole[p.role] += p.secs - prev.secs
	}
	return d
}
