package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// USER_HZ: /proc reports CPU times in ticks of 1/100 s on every Linux
// architecture, whatever the kernel's HZ.
const userHZ = 100

// procStat is what the CPU accounting needs of /proc/PID/stat.
type procStat struct {
	ppid         int
	self, reaped time.Duration // utime+stime; cutime+cstime (children waited for)
}

func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may hold spaces: fields start
	// after the last ')'. f[0] is field 3 (state).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	n := func(k int) time.Duration {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return time.Duration(v) * time.Second / userHZ
	}
	ppid, _ := strconv.Atoi(f[1])
	return procStat{ppid: ppid, self: n(11) + n(12), reaped: n(13) + n(14)}, true
}

// treeCPU is the CPU time of pid and all its descendants, those still running
// and those already reaped. 0 when pid is 0 or gone.
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	root, ok := readStat(pid)
	if !ok {
		return 0
	}
	children := map[int][]int{}
	stats := map[int]procStat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, ok := readStat(p); ok {
			stats[p] = st
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	total := root.self + root.reaped
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		total += stats[p].self + stats[p].reaped
		queue = append(queue, children[p]...)
	}
	return total
}

// cpuUse is the CPU time spent by each party over a run.
type cpuUse struct {
	worker, postgres, bench time.Duration
}

// cpuMeter snapshots the CPU time of the worker, the PostgreSQL cluster (when
// this program started it) and this program itself (the in-process
// nats-server, when it runs one, and the publisher).
type cpuMeter struct {
	workerPID, pgPID int
}

func (m cpuMeter) snapshot() cpuUse {
	self, _ := readStat(os.Getpid())
	w, _ := readStat(m.workerPID)
	return cpuUse{worker: w.self, postgres: treeCPU(m.pgPID), bench: self.self}
}

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{worker: u.worker - v.worker, postgres: u.postgres - v.postgres, bench: u.bench - v.bench}
}

// perCommand formats the CPU time per command of each party.
func (u cpuUse) perCommand(n int, pg, nats bool) string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n)) }
	parts := []string{"worker " + us(u.worker)}
	if pg {
		parts = append(parts, "PostgreSQL "+us(u.postgres))
	}
	if nats {
		parts = append(parts, "nats-server + publisher "+us(u.bench))
	} else {
		parts = append(parts, "publisher "+us(u.bench))
	}
	return strings.Join(parts, ", ")
}

// peakRSS reads VmHWM (peak resident set) of a process, in bytes.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
