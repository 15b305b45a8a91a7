package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/internal/devstack"
	"simworker/repo"
)

// subject is a worker under measure: a simworker binary, or (bin "") the
// pass-through worker, this program run with -passthrough-worker.
type subject struct {
	name, bin string
}

// runResult is one measured run of a subject on a fresh database and fresh
// streams: throughput, CPU, allocations, then latency at a paced rate, the
// same worker process throughout.
type runResult struct {
	n          int
	rate       float64
	cpu        cpuUse
	rss        int64
	allocs     float64 // allocations per command (the worker's go_memstats_mallocs_total), -1 unknown
	allocBytes float64 // bytes allocated per command, -1 unknown
	lat        latencies
}

func (r runResult) workerCPU() time.Duration {
	return r.cpu.worker / time.Duration(max(1, r.n))
}

// generateValid makes n valid commands with distinct ICCIDs (prefix names
// them, so two workloads of one run never share an id or an ICCID).
func generateValid(n int, prefix string, iccidBase int) []command {
	out := make([]command, n)
	for i := range out {
		id := fmt.Sprintf("%s-%08d", prefix, i)
		sim := map[string]any{"device_id": fmt.Sprintf("d-%d", i%20000), "iccid": fmt.Sprintf("89%017d", iccidBase+i),
			"msisdn": fmt.Sprintf("49151%08d", i), "status": "active", "rate_plan": "Flex 1GB", "communication_plan": "IoT EU",
			"sim_metadata": json.RawMessage(`{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}`)}
		body, _ := json.Marshal(map[string]any{"command_id": id, "actor_id": fmt.Sprintf("u-%d", (i%20000)/10), "sim": sim})
		out[i] = command{id: id, body: body}
	}
	return out
}

// runSubject measures one subject: n valid commands published as fast as
// JetStream takes them, first publish to last outcome; then paced commands
// at perSecond, publish to outcome. Its database is created empty and
// migrated by the subject's own binary, so two builds each meet their own
// schema; the streams are created by the subject too.
func (b *bench) runSubject(ctx context.Context, s subject, cmds, paced []command, perSecond int, profile string) (runResult, error) {
	dbURL, err := b.emptyDatabase(ctx)
	if err != nil {
		return runResult{}, err
	}
	// Dropped once measured: autovacuum working through this run's 100,000
	// rows would otherwise be paid for by the next run (PostgreSQL's CPU
	// is the whole cluster's).
	defer b.dropDatabase(dbURL)
	// The worker's own defaults, as a user runs it (its log at info, one
	// line per outcome, to a file).
	env := []string{"NATS_URL=" + b.natsURL, "DATABASE_URL=" + dbURL}
	if s.bin != "" {
		m := exec.Command(s.bin, "migrate")
		m.Env = append(os.Environ(), env...)
		if out, err := m.CombinedOutput(); err != nil {
			return runResult{}, fmt.Errorf("%s migrate: %v: %s", s.name, err, out)
		}
	}
	pool, err := repo.Open(ctx, dbURL)
	if err != nil {
		return runResult{}, err
	}
	defer pool.Close()
	if s.bin == "" {
		if err := repo.Migrate(ctx, pool); err != nil {
			return runResult{}, err
		}
	}
	if _, err := repo.New(pool).LoadFixtures(ctx, fixtures()); err != nil {
		return runResult{}, err
	}
	for _, st := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
		_ = b.js.DeleteStream(ctx, st)
	}
	b.checkpoint(ctx)
	opsPort, err := devstack.FreePort()
	if err != nil {
		return runResult{}, err
	}
	var cmd *exec.Cmd
	if s.bin != "" {
		cmd = exec.Command(s.bin, "run")
		env = append(env, "SIM_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(opsPort))
	} else {
		self, err := os.Executable()
		if err != nil {
			return runResult{}, err
		}
		cmd = exec.Command(self, "-passthrough-worker")
		opsPort = 0
	}
	if profile != "" {
		env = append(env, "SIM_CPU_PROFILE="+profile)
	}
	cmd.Env = append(os.Environ(), env...)
	logFile, err := os.CreateTemp("", "simbench-worker-*.log")
	if err != nil {
		return runResult{}, err
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		return runResult{}, err
	}
	stopped := false
	stop := func() (int64, error) {
		stopped = true
		rss := peakRSS(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return rss, cmd.Wait()
	}
	defer func() {
		if !stopped {
			_, _ = stop()
		}
	}()
	if err := b.waitReady(ctx); err != nil {
		return runResult{}, err
	}
	r := runResult{n: len(cmds), allocs: -1, allocBytes: -1}
	mallocs0, bytes0 := goAllocs(opsPort)
	meter := cpuMeter{workerPID: cmd.Process.Pid, pgPID: b.pgPID}
	before := meter.snapshot()
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return runResult{}, err
		}
	}
	if err := b.waitEvents(ctx, len(cmds), 30*time.Minute); err != nil {
		return runResult{}, fmt.Errorf("%s: %w", s.name, err)
	}
	r.rate = float64(len(cmds)) / time.Since(start).Seconds()
	r.cpu = meter.snapshot().sub(before)
	if mallocs1, bytes1 := goAllocs(opsPort); mallocs0 >= 0 && mallocs1 >= 0 {
		r.allocs, r.allocBytes = (mallocs1-mallocs0)/float64(len(cmds)), (bytes1-bytes0)/float64(len(cmds))
	}
	if len(paced) > 0 {
		if r.lat, err = b.offer(ctx, paced, perSecond); err != nil {
			return runResult{}, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if r.rss, err = stop(); err != nil {
		return runResult{}, fmt.Errorf("%s exit: %w", s.name, err)
	}
	return r, nil
}

// emptyDatabase creates a database with nothing in it.
func (b *bench) emptyDatabase(ctx context.Context) (string, error) {
	b.dbs++
	name := fmt.Sprintf("simbench_%d_%d", os.Getpid(), b.dbs)
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(b.serverURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropDatabase drops the database of dbURL, its connections closed first.
func (b *bench) dropDatabase(dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)"); err != nil {
		b.logf("drop %s: %v", u.Path, err)
	}
}

// goAllocs reads go_memstats_mallocs_total and go_memstats_alloc_bytes_total
// from a process's /metrics (-1 when it serves none).
func goAllocs(port int) (mallocs, bytes float64) {
	if port == 0 {
		return -1, -1
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return -1, -1
	}
	defer resp.Body.Close()
	mallocs, bytes = -1, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_memstats_mallocs_total":
			mallocs = v
		case "go_memstats_alloc_bytes_total":
			bytes = v
		}
	}
	return mallocs, bytes
}

// offer publishes cmds at perSecond to a running worker and measures
// publish to outcome.
func (b *bench) offer(ctx context.Context, cmds []command, perSecond int) (latencies, error) {
	n := len(cmds)
	sent := make(map[string]time.Time, n)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	sub, err := b.nc.Subscribe(client.EventsSubject, func(m *nats.Msg) {
		id := eventCommandID(m.Data)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[id]; ok {
			lat = append(lat, now.Sub(t))
			delete(sent, id)
			if len(lat) == n {
				close(done)
			}
		}
	})
	if err != nil {
		return latencies{}, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	for i, c := range cmds {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		mu.Lock()
		sent[c.id] = time.Now()
		mu.Unlock()
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return latencies{}, err
		}
	}
	achieved := float64(n) / time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return latencies{}, fmt.Errorf("paced run: outcomes missing")
	case <-ctx.Done():
		return latencies{}, ctx.Err()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return latencies{n: n, p50: lat[n/2], p99: lat[n*99/100], max: lat[n-1], achieved: achieved}, nil
}

// eventCommandID is the commandid attribute of an event.
func eventCommandID(data []byte) string {
	var ev struct {
		CommandID string `json:"commandid"`
	}
	_ = json.Unmarshal(data, &ev)
	return ev.CommandID
}

// compare runs the subjects in turn, pairs times, on the same workload, and
// prints each run and the median of the ratios to the first subject.
func (b *bench) compare(ctx context.Context, subjects []subject, pairs, n, paced int) error {
	cmds := generateValid(n, "cmp", 0)
	slow := generateValid(paced, "paced", n)
	results := make([][]runResult, len(subjects))
	for p := range pairs {
		for i, s := range subjects {
			b.logf("pair %d/%d: %s", p+1, pairs, s.name)
			profile := ""
			if b.o.cpuProfile != "" && p == 0 {
				profile = b.o.cpuProfile + "." + s.name
			}
			r, err := b.runSubject(ctx, s, cmds, slow, 1000, profile)
			if err != nil {
				return err
			}
			results[i] = append(results[i], r)
			b.logf("%s: %.0f/s, CPU per command: %s; %.0f allocations (%.0f bytes) per command; p99 %s", s.name, r.rate,
				r.cpu.perCommand(r.n, b.pgPID != 0, b.ownNATS), r.allocs, r.allocBytes, ms(r.lat.p99))
		}
	}
	fmt.Print(compareTable(subjects, results, n, paced))
	if b.o.out != "" {
		return os.WriteFile(b.o.out, []byte(compareTable(subjects, results, n, paced)), 0o644)
	}
	return nil
}

// compareTable is the paired runs as Markdown: one row per pair, then the
// medians.
func compareTable(subjects []subject, results [][]runResult, n, paced int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d valid commands published at once, then %d at a paced 1,000/s; rates in commands/s; CPU: the worker's per command\n\n", n, paced)
	head := []string{"pair"}
	for i, s := range subjects {
		head = append(head, s.name+" rate", s.name+" CPU", s.name+" p99 at 1,000/s")
		if i > 0 {
			head = append(head, s.name+" / "+subjects[0].name)
		}
	}
	sb.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat(" --- |", len(head)) + "\n")
	ratios := make([][]float64, len(subjects))
	cpus := make([][]float64, len(subjects))
	p99s := make([][]float64, len(subjects))
	rates := make([][]float64, len(subjects))
	for p := range results[0] {
		row := []string{strconv.Itoa(p + 1)}
		for i := range subjects {
			r := results[i][p]
			row = append(row, fmt.Sprintf("%.0f", r.rate), fmt.Sprintf("%.1f µs", float64(r.workerCPU().Nanoseconds())/1000), ms(r.lat.p99))
			rates[i] = append(rates[i], r.rate)
			cpus[i] = append(cpus[i], float64(r.workerCPU().Nanoseconds())/1000)
			p99s[i] = append(p99s[i], float64(r.lat.p99.Microseconds())/1000)
			if i > 0 {
				ratio := r.rate / results[0][p].rate
				ratios[i] = append(ratios[i], ratio)
				row = append(row, fmt.Sprintf("%.2f", ratio))
			}
		}
		sb.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	row := []string{"median"}
	for i := range subjects {
		row = append(row, fmt.Sprintf("%.0f", median(rates[i])), fmt.Sprintf("%.1f µs", median(cpus[i])), fmt.Sprintf("%.1f ms", median(p99s[i])))
		if i > 0 {
			row = append(row, fmt.Sprintf("%.2f", median(ratios[i])))
		}
	}
	sb.WriteString("| " + strings.Join(row, " | ") + " |\n")
	return sb.String()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// subjectsOf parses -compare: NAME=PATH or PATH items, comma-separated;
// "passthrough" names the pass-through worker.
func subjectsOf(spec string) ([]subject, error) {
	var out []subject
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		name, bin, found := strings.Cut(item, "=")
		if !found {
			name, bin = filepath.Base(filepath.Dir(item))+"/"+filepath.Base(item), item
		}
		if item == "passthrough" || bin == "passthrough" {
			out = append(out, subject{name: "passthrough"})
			continue
		}
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("-compare: %w", err)
		}
		out = append(out, subject{name: name, bin: bin})
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("-compare needs at least two subjects")
	}
	return out, nil
}
