package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"simworker/app"
	"simworker/internal/devstack"
	"simworker/repo"
	"simworker/repo/repotest"
)

// TestDevPrintsACurlThatCreates runs `simworker dev` as a newcomer would,
// takes the curl it prints, sends that request, and expects 201; then
// SIGTERM stops everything with exit 0.
func TestDevPrintsACurlThatCreates(t *testing.T) {
	skipShort(t)
	cmd := exec.Command(binPath, "dev")
	cmd.Env = append(os.Environ(), "SIM_DEV_DATA_DIR="+t.TempDir(), "SIM_LOG_LEVEL=warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	curl := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "curl ") {
				curl <- line
			}
		}
	}()
	var line string
	select {
	case line = <-curl:
	case <-time.After(2 * time.Minute):
		t.Fatalf("simworker dev printed no curl:\n%s", logs)
	}
	if _, err := exec.LookPath("curl"); err == nil {
		// As pasted: the status line and the headers show (-i).
		out, err := exec.Command("bash", "-c", line).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "HTTP/1.1 201 Created") || !strings.Contains(string(out), "Location: /v1/sims/") ||
			!strings.Contains(string(out), `"company_id":"co-acme"`) {
			t.Fatalf("the printed curl, pasted: %v\n%s", err, out)
		}
	} else {
		req := requestFromCurl(t, line)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"company_id":"co-acme"`) {
			t.Fatalf("the printed curl answered %s: %s", resp.Status, body)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("simworker dev after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("simworker dev did not stop within 60 s of SIGTERM")
	}
}

// requestFromCurl turns the banner's one-line curl into a request.
func requestFromCurl(t *testing.T, line string) *http.Request {
	t.Helper()
	url := regexp.MustCompile(`-X POST (\S+)`).FindStringSubmatch(line)
	data := regexp.MustCompile(`-d '([^']*)'`).FindStringSubmatch(line)
	if url == nil || data == nil {
		t.Fatalf("not the expected curl: %s", line)
	}
	req, err := http.NewRequest(http.MethodPost, url[1], strings.NewReader(data[1]))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range regexp.MustCompile(`-H '([^:]+): ([^']*)'`).FindAllStringSubmatch(line, -1) {
		req.Header.Set(h[1], h[2])
	}
	return req
}

// TestAPIProcess: a real `simworker api` beside a real worker: a token made
// with the repo, a SIM created over HTTP, and exit 0 on SIGTERM.
func TestAPIProcess(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	dbURL, pool := newDatabase(t, "api_process")
	repotest.LoadDemo(t, pool)
	ns, err := devstack.StartNATS(devstack.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	opsPort, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"NATS_URL=" + ns.URL, "DATABASE_URL=" + dbURL, "SIM_LOG_LEVEL=info"}
	worker := startProc(t, append(env, "SIM_HTTP_ADDR=127.0.0.1:0")...)
	api := startProcCmd(t, "api", append(env, "SIM_API_ADDR=127.0.0.1:"+itoa(port), "SIM_HTTP_ADDR=127.0.0.1:"+itoa(opsPort))...)
	tok, _, err := app.New(repo.New(pool), "").CreateToken(ctx, "u-alice", "e2e", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+itoa(port)+"/v1/sims",
			strings.NewReader(`{"device_id":"d-1","iccid":"8944500102198300999"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "e2e-1")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				break
			}
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST /v1/sims: %s %s", resp.Status, body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 201 within 60 s (last: %v)\n%s", err, api.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The API process's own endpoint: ready (NATS, PostgreSQL, its events
	// subscription), and its metrics count the request.
	ops := "http://127.0.0.1:" + itoa(opsPort)
	if code, body := get(t, ops+"/readyz"); code != 200 || !strings.Contains(body, `"name":"events","ok":true`) {
		t.Fatalf("API /readyz: %d %s", code, body)
	}
	if _, body := get(t, ops+"/metrics"); !strings.Contains(body, `simworker_api_requests_total{route="POST /v1/sims",status="201"} 1`) ||
		!strings.Contains(body, `simworker_api_outcomes_total{type="sim.created"`) {
		t.Fatalf("API /metrics lacks the request:\n%s", body)
	}
	if out := api.output(); strings.Contains(out, tok[strings.Index(tok, ".")+1:]) {
		t.Fatalf("the API logged a token:\n%s", out)
	}
	for name, p := range map[string]*proc{"api": api, "worker": worker} {
		if err := p.stop(40 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v\n%s", name, err, p.output())
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDevStopsCleanlyUnderABrokenPipe: `make run | tee log` and Ctrl-C ends
// tee first; simworker dev, writing into the broken pipe, still stops the
// worker and PostgreSQL cleanly (a SIGPIPE used to kill it first, leaving
// the cluster "in production").
func TestDevStopsCleanlyUnderABrokenPipe(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "dev")
	cmd.Env = append(os.Environ(), "SIM_DEV_DATA_DIR="+dir, "SIM_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = wr, wr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "curl ") {
				close(ready)
				break
			}
		}
		r.Close() // tee is gone: every later write is a broken pipe
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("simworker dev never printed its banner")
	}
	time.Sleep(200 * time.Millisecond) // let the pipe close before the stop's first log line
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() < 0 {
			t.Fatalf("simworker dev was killed by a signal: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("simworker dev did not stop within 60 s of SIGINT")
	}
	bin, err := devstack.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "pg_controldata"), filepath.Join(dir, "pg")).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Database cluster state:               shut down") {
		t.Fatalf("PostgreSQL was not shut down cleanly:\n%s", out)
	}
}

// TestMakeCleanRefusesWhileDevRuns: make clean would delete the data of a
// running simworker dev (its PostgreSQL then fails every statement); it
// refuses while the dev cluster's postmaster lives, and cleans once it is
// gone.
func TestMakeCleanRefusesWhileDevRuns(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	pg := filepath.Join(dir, ".simworker-dev", "pg")
	if err := os.MkdirAll(pg, 0o755); err != nil {
		t.Fatal(err)
	}
	clean := func(pid int) (string, error) {
		if err := os.WriteFile(filepath.Join(pg, "postmaster.pid"), []byte(itoa(pid)+"\n/data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("make", "-s", "clean")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := clean(os.Getpid()) // a live process holds the cluster
	if err == nil || !strings.Contains(out, "simworker dev is running") {
		t.Fatalf("make clean while the cluster runs: %v\n%s", err, out)
	}
	if _, err := os.Stat(pg); err != nil {
		t.Fatalf("make clean removed the running cluster's data: %v", err)
	}
	if out, err := clean(1 << 22); err != nil { // no such process: a stale pid file
		t.Fatalf("make clean after the cluster stopped: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".simworker-dev")); !os.IsNotExist(err) {
		t.Fatalf("make clean left .simworker-dev: %v", err)
	}
}

// TestDevReusesPortsAndWritesEnv: a second simworker dev run on the same
// data directory takes the ports of the first (they are free again), so a
// NATS_URL exported from the first still works, and each run writes an env
// file that a shell can source.
func TestDevReusesPortsAndWritesEnv(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	run := func() (env map[string]string) {
		cmd := exec.Command(binPath, "dev")
		cmd.Env = append(os.Environ(), "SIM_DEV_DATA_DIR="+dir, "SIM_LOG_LEVEL=warn")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
		sourced := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "In another shell: source ") {
					sourced <- strings.Fields(strings.TrimPrefix(line, "In another shell: source "))[0]
				}
			}
		}()
		var file string
		select {
		case file = <-sourced:
		case <-time.After(2 * time.Minute):
			t.Fatal("simworker dev printed no env file")
		}
		out, err := exec.Command("bash", "-c", "source "+file+` && printf '%s\n' "$NATS_URL" "$DATABASE_URL" "$SIM_API_URL" "$SIM_TOKEN_U_ALICE"`).Output()
		if err != nil {
			t.Fatal(err)
		}
		v := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(v) != 4 || !regexp.MustCompile(`^nats://dev:[0-9a-f]{48}@127.0.0.1:[0-9]+$`).MatchString(v[0]) || !strings.HasPrefix(v[1], "postgres://") ||
			!strings.HasPrefix(v[2], "http://127.0.0.1:") || !strings.HasPrefix(v[3], "sim_") {
			t.Fatalf("the env file gives %q", v)
		}
		resp, err := http.Get(v[2] + "/openapi.yaml")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("SIM_API_URL from the env file: %v %v", resp, err)
		}
		resp.Body.Close()
		devNATSRefusesStrangers(t, v[0])
		return map[string]string{"nats": v[0], "db": v[1], "api": v[2]}
	}
	first := run()
	second := run()
	for _, k := range []string{"nats", "db", "api"} {
		if first[k] != second[k] {
			t.Errorf("%s changed between runs: %s, then %s", k, first[k], second[k])
		}
	}
}

// devNATSRefusesStrangers: dev's NATS takes the credentials in its
// NATS_URL and nothing else, so a local process without them cannot forge
// an outcome event (which the API would answer with).
func devNATSRefusesStrangers(t *testing.T, natsURL string) {
	t.Helper()
	u, err := url.Parse(natsURL)
	if err != nil || u.User == nil {
		t.Fatalf("NATS_URL %q carries no credentials", natsURL)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("NATS_URL from the env file: %v", err)
	}
	nc.Close()
	stranger := *u
	stranger.User = nil
	for _, try := range []string{stranger.String(), "nats://dev:guess@" + u.Host} {
		nc, err := nats.Connect(try)
		if err == nil {
			err = nc.Publish("sim.events.created", []byte(`{"type":"sim.created","commandid":"api-forged"}`))
			nc.Close()
			t.Fatalf("%s: connected and published a forged event (%v)", try, err)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%s: %v, want an authorization violation", try, err)
		}
	}
}
