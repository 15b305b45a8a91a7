package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"simworker/app"
	"simworker/internal/devstack"
	"simworker/internal/netfault"
	"simworker/repo"
	"simworker/repo/repotest"
)

// links puts a fault proxy between the workers and each dependency: the
// workers reach PostgreSQL and NATS only through them (the suite's own
// connections go direct).
type links struct {
	pg, nats *netfault.Link
}

// proxy routes the workers of w through fault proxies and gives each its
// own /readyz port.
func (w *world) proxy() *links {
	w.t.Helper()
	u, err := url.Parse(w.dbURL)
	if err != nil {
		w.t.Fatal(err)
	}
	l := &links{}
	if l.pg, err = netfault.Start(u.Host); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(l.pg.Close)
	n, err := url.Parse(strings.Split(w.natsURL, ",")[0])
	if err != nil {
		w.t.Fatal(err)
	}
	if l.nats, err = netfault.Start(n.Host); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(l.nats.Close)
	u.Host = l.pg.Addr
	for i, e := range w.env {
		switch {
		case strings.HasPrefix(e, "DATABASE_URL="):
			w.env[i] = "DATABASE_URL=" + u.String()
		case strings.HasPrefix(e, "NATS_URL="):
			w.env[i] = "NATS_URL=nats://" + l.nats.Addr
		}
	}
	w.readyz = true
	return l
}

// startWorker starts one worker; with readyz, on a /readyz port of its own.
func (w *world) startWorker() {
	env := w.env
	if w.readyz {
		port, err := devstack.FreePort()
		if err != nil {
			w.t.Fatal(err)
		}
		addr := "127.0.0.1:" + itoa(port)
		env = append(append([]string(nil), w.env...), "SIM_HTTP_ADDR="+addr)
		w.opsAddrs = append(w.opsAddrs, addr)
	}
	w.workers = append(w.workers, startProc(w.t, env...))
}

// notReady waits until a worker's /readyz answers 503 and returns how long
// that took; -1 when none did within limit.
func (w *world) notReady(limit time.Duration) time.Duration {
	start := time.Now()
	c := &http.Client{Timeout: 3 * time.Second}
	for time.Since(start) < limit {
		for _, addr := range w.opsAddrs {
			resp, err := c.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					return time.Since(start)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1
}

// healed records the end of a network fault and measures how long until
// outcomes flow again: 100 more events stored (a straggler is not a flow),
// or nothing left to decide.
func (w *world) healed() {
	w.healedAt = time.Now()
	before := w.eventCount()
	for time.Since(w.healedAt) < time.Minute {
		if n := w.eventCount(); n >= before+100 || w.drained(time.Millisecond) {
			w.resume = time.Since(w.healedAt)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.resume = -1
}

// netScenarios are the faults of a sick network between the workers and
// their dependencies, each while commands flow.
func netScenarios(t *testing.T, started func(w *world, frac int)) []scenario {
	silent := func(link func(*links) *netfault.Link) func(w *world, l *links) {
		return func(w *world, l *links) {
			started(w, 4)
			w.strike()
			f, err := link(l).Silence()
			if err != nil {
				w.t.Fatal(err)
			}
			begin := time.Now()
			w.noticed = w.notReady(10 * time.Second)
			time.Sleep(10*time.Second - time.Since(begin))
			if err := f.Heal(); err != nil {
				w.t.Fatal(err)
			}
			w.healed()
		}
	}
	for10s := func(fault func(l *links) ([]*netfault.Fault, error)) func(w *world, l *links) {
		return func(w *world, l *links) {
			started(w, 8)
			w.strike()
			fs, err := fault(l)
			if err != nil {
				w.t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
			for _, f := range fs {
				if err := f.Heal(); err != nil {
					w.t.Fatal(err)
				}
			}
			w.healed()
		}
	}
	one := func(f *netfault.Fault, err error) ([]*netfault.Fault, error) { return []*netfault.Fault{f}, err }
	_ = one
	return []scenario{
		{name: "pg_link_silent_10s", workers: 2, net: silent(func(l *links) *netfault.Link { return l.pg })},
		{name: "nats_link_silent_10s", workers: 2, net: silent(func(l *links) *netfault.Link { return l.nats })},
		{name: "pg_resets_mid_tx", workers: 2, net: for10s(func(l *links) ([]*netfault.Fault, error) { return one(l.pg.ResetPeer(50)) })},
		{name: "pg_commit_answer_cut", workers: 2, net: func(w *world, l *links) {
			var f *netfault.Fault
			for10s(func(l *links) ([]*netfault.Fault, error) {
				var err error
				f, err = l.pg.CutCommits()
				return []*netfault.Fault{f}, err
			})(w, l)
			if f.Cuts() == 0 {
				w.t.Errorf("no COMMIT answer was cut: the scenario proved nothing")
			}
			w.t.Logf("pg_commit_answer_cut: %d COMMIT answers dropped after the commit", f.Cuts())
		}},
		{name: "latency_jitter_both", workers: 2, net: for10s(func(l *links) ([]*netfault.Fault, error) {
			a, err := l.pg.Latency(30, 30)
			if err != nil {
				return nil, err
			}
			b, err := l.nats.Latency(30, 30)
			return []*netfault.Fault{a, b}, err
		})},
		{name: "trickle_both_16KBps", workers: 2, net: for10s(func(l *links) ([]*netfault.Fault, error) {
			a, err := l.pg.Bandwidth(16)
			if err != nil {
				return nil, err
			}
			b, err := l.nats.Bandwidth(16)
			return []*netfault.Fault{a, b}, err
		})},
	}
}

// TestAPIThroughSickLinks: `simworker api` reaching PostgreSQL and NATS
// through fault proxies. While a link is silent every request is answered
// (503, or 201/202 when its command got through), none hangs or gets a 500,
// and /readyz says not ready; once the link heals a new request gets 201
// within 10 s, and each request retried with its key ends with its one SIM.
func TestAPIThroughSickLinks(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	dbURL, pool := newDatabase(t, "api_sick_links")
	repotest.LoadDemo(t, pool)
	ns, err := devstack.StartNATS(devstack.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	u, _ := url.Parse(dbURL)
	pgLink, err := netfault.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pgLink.Close)
	n, _ := url.Parse(ns.URL)
	natsLink, err := netfault.Start(n.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(natsLink.Close)
	proxied := *u
	proxied.Host = pgLink.Addr
	port, _ := devstack.FreePort()
	opsPort, _ := devstack.FreePort()
	startProc(t, "NATS_URL="+ns.URL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn", "SIM_HTTP_ADDR=127.0.0.1:0")
	api := startProcCmd(t, "api", "NATS_URL=nats://"+natsLink.Addr, "DATABASE_URL="+proxied.String(), "SIM_LOG_LEVEL=warn",
		"SIM_API_ADDR=127.0.0.1:"+itoa(port), "SIM_HTTP_ADDR=127.0.0.1:"+itoa(opsPort), "SIM_API_WAIT=3s")
	tok, _, err := app.New(repo.New(pool), "").CreateToken(ctx, "u-alice", "e2e", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute}
	iccids := map[string]string{}
	post := func(key string) (int, time.Duration) {
		if iccids[key] == "" {
			iccids[key] = fmt.Sprintf("89445001021983%05d", len(iccids))
		}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+itoa(port)+"/v1/sims",
			strings.NewReader(`{"device_id":"d-1","iccid":"`+iccids[key]+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, time.Since(start)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	until201 := func(key string, limit time.Duration) time.Duration {
		start := time.Now()
		for time.Since(start) < limit {
			if code, _ := post(key); code == http.StatusCreated {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: no 201 within %s\n%s", key, limit, api.output())
		return 0
	}
	until201("warm-up", time.Minute)
	ops := &world{t: t, opsAddrs: []string{"127.0.0.1:" + itoa(opsPort)}}
	var keys []string
	for _, link := range []struct {
		name string
		l    *netfault.Link
	}{{"postgres", pgLink}, {"nats", natsLink}} {
		f, err := link.l.Silence()
		if err != nil {
			t.Fatal(err)
		}
		silencedAt := time.Now()
		noticed := make(chan time.Duration, 1)
		go func() { noticed <- ops.notReady(10 * time.Second) }()
		answers := map[int]int{}
		for i := 0; time.Since(silencedAt) < 10*time.Second; i++ {
			key := fmt.Sprintf("%s-silent-%d", link.name, i)
			keys = append(keys, key)
			code, took := post(key)
			answers[code]++
			if code != http.StatusCreated && code != http.StatusAccepted && code != http.StatusServiceUnavailable {
				t.Errorf("%s link silent: POST answered %d", link.name, code)
			}
			if took > 12*time.Second {
				t.Errorf("%s link silent: a POST took %s to answer", link.name, took)
			}
		}
		if d := <-noticed; d < 0 {
			t.Errorf("%s link silent: /readyz still ready after 10 s", link.name)
		} else {
			t.Logf("%s link silent: /readyz not ready after %s; answers %v", link.name, d.Round(10*time.Millisecond), answers)
		}
		if err := f.Heal(); err != nil {
			t.Fatal(err)
		}
		if answers[http.StatusServiceUnavailable] == 0 {
			t.Errorf("%s link silent: no request got a 503: the fault proved nothing (%v)", link.name, answers)
		}
		took := until201(link.name+"-healed", 10*time.Second)
		t.Logf("%s link healed: 201 again after %s", link.name, took.Round(10*time.Millisecond))
	}
	for _, key := range keys {
		until201(key, 30*time.Second)
	}
	var sims int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sims`).Scan(&sims); err != nil {
		t.Fatal(err)
	}
	if want := len(iccids); sims != want {
		t.Fatalf("%d SIMs for %d keys", sims, want)
	}
}
