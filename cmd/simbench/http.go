package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"simworker/app"
	"simworker/internal/devstack"
	"simworker/repo"
)

// httpClients is how many clients the HTTP throughput run keeps busy, each
// with a token and idempotency keys of its own.
const httpClients = 64

// httpRun is the HTTP API in front of a worker: both real processes on a
// fresh database and fresh streams.
type httpRun struct {
	url    string
	tokens []string
	next   atomic.Int64
	client *http.Client
	stop   func()
	meter  cpuMeter // the worker's CPU, PostgreSQL's and this program's
	apiPID int
}

// startHTTP starts a worker and `simworker api` (rate limit off) and makes a
// token for each of httpClients users.
func (b *bench) startHTTP(ctx context.Context, cpuProfile string) (*httpRun, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return nil, err
	}
	b.checkpoint(ctx)
	h := &httpRun{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: httpClients}, Timeout: time.Minute}}
	for u := range httpClients {
		tok, _, err := app.New(repo.New(pool), "").CreateToken(ctx, fmt.Sprintf("u-%d", u), "simbench", time.Time{})
		if err != nil {
			return nil, err
		}
		h.tokens = append(h.tokens, tok)
	}
	stopWorker, workerPID, err := b.worker(dbURL, cpuProfile)
	if err != nil {
		return nil, err
	}
	port, err := devstack.FreePort()
	if err != nil {
		_, _ = stopWorker()
		return nil, err
	}
	api := exec.Command(b.o.workerBin, "api")
	api.Env = append(os.Environ(), "NATS_URL="+b.natsURL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn", "SIM_HTTP_ADDR=off",
		"SIM_API_RATE=0", "SIM_API_ADDR=127.0.0.1:"+strconv.Itoa(port))
	if cpuProfile != "" {
		api.Env = append(api.Env, "SIM_CPU_PROFILE="+cpuProfile+".api")
	}
	api.Stdout, api.Stderr = io.Discard, os.Stderr
	if err := api.Start(); err != nil {
		_, _ = stopWorker()
		return nil, err
	}
	h.meter, h.apiPID = cpuMeter{workerPID: workerPID, pgPID: b.pgPID}, api.Process.Pid
	h.url = "http://127.0.0.1:" + strconv.Itoa(port)
	h.stop = func() {
		_ = api.Process.Signal(syscall.SIGTERM)
		_ = api.Wait()
		_, _ = stopWorker()
	}
	if err := b.waitReady(ctx); err != nil {
		h.stop()
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return h, nil
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("simworker api never listened")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// create sends one valid POST /v1/sims for client c and returns its latency.
func (h *httpRun) create(ctx context.Context, c int) (time.Duration, error) {
	n := h.next.Add(1)
	body := fmt.Sprintf(`{"device_id":"d-%d","iccid":"87%017d","msisdn":"49151%08d","status":"active","rate_plan":"Flex 1GB",`+
		`"sim_metadata":{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}}`, c*10+int(n%10), n, n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/v1/sims", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.tokens[c])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(n, 10))
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("POST /v1/sims: %s", resp.Status)
	}
	return time.Since(start), nil
}

// probe sends GET /v1/sims/{id} with an id that is no UUID for client c,
// answered 404 after the token check without PostgreSQL or NATS: the HTTP
// round trip alone.
func (h *httpRun) probe(ctx context.Context, c int) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/v1/sims/no-such-sim", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.tokens[c])
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		return 0, fmt.Errorf("GET /v1/sims/no-such-sim: %s", resp.Status)
	}
	return 0, nil
}

// httpThroughput: n POST /v1/sims from httpClients clients at once, answered
// 201, then n probes (the HTTP round trip alone) the same way. It returns both
// rates and the CPU per POST of the worker, the API, PostgreSQL and this
// program (nats-server and the clients).
func (b *bench) httpThroughput(ctx context.Context, n int) (creates, probes float64, cpu string, err error) {
	profile := ""
	if b.o.cpuProfile != "" {
		profile = b.o.cpuProfile + ".http"
	}
	h, err := b.startHTTP(ctx, profile)
	if err != nil {
		return 0, 0, "", err
	}
	defer h.stop()
	before, apiBefore := h.meter.snapshot(), treeCPU(h.apiPID)
	b.logf("HTTP throughput: %d requests, %d clients", n, httpClients)
	if creates, err = closedLoop(n, func(c int) error { _, err := h.create(ctx, c); return err }); err != nil {
		return 0, 0, "", err
	}
	used, api := h.meter.snapshot().sub(before), treeCPU(h.apiPID)-apiBefore
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n)) }
	cpu = fmt.Sprintf("worker %s, api %s, PostgreSQL %s, nats-server + clients %s", us(used.worker), us(api), us(used.postgres), us(used.bench))
	if probes, err = closedLoop(n, func(c int) error { _, err := h.probe(ctx, c); return err }); err != nil {
		return 0, 0, "", err
	}
	return creates, probes, cpu, nil
}

// closedLoop runs n calls of do from httpClients clients, each calling again
// as soon as its call returns, and returns the calls per second; the first
// error stops it.
func closedLoop(n int, do func(client int) error) (float64, error) {
	var left atomic.Int64
	left.Store(int64(n))
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for c := range httpClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := do(c); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// httpLatency offers POST /v1/sims at a fixed rate, round-robin over the
// clients, and measures request to answer.
func (b *bench) httpLatency(ctx context.Context, perSecond int, d time.Duration) (latencies, error) {
	h, err := b.startHTTP(ctx, "")
	if err != nil {
		return latencies{}, err
	}
	defer h.stop()
	n := int(float64(perSecond) * d.Seconds())
	b.logf("HTTP latency at %d/s for %s", perSecond, d)
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := h.create(ctx, i%httpClients)
			if err != nil {
				errs <- err
				return
			}
			lat[i] = l
		}()
	}
	achieved := float64(n) / time.Since(start).Seconds()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return latencies{}, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return latencies{n: n, p50: lat[n/2], p99: lat[n*99/100], max: lat[n-1], achieved: achieved}, nil
}
