package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"simworker/app"
	"simworker/cmd/internal/cli"
	"simworker/deploy"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/repo"
)

// devConfig is the configuration of simworker dev.
type devConfig struct {
	DataDir      string       `env:"SIM_DEV_DATA_DIR" envDefault:".simworker-dev" flag:"data-dir" help:"where the dev PostgreSQL cluster and JetStream store live (kept between runs)"`
	NATSPort     int          `env:"SIM_DEV_NATS_PORT" envDefault:"0" flag:"nats-port" help:"NATS client port; 0 picks a free one"`
	PGPort       int          `env:"SIM_DEV_PG_PORT" envDefault:"0" flag:"pg-port" help:"PostgreSQL port; 0 picks a free one"`
	SyncInterval syncInterval `env:"SIM_DEV_NATS_SYNC_INTERVAL" envDefault:"10s" flag:"nats-sync-interval" help:"JetStream file store fsync interval ('always' fsyncs every write)"`
	APIPort      int          `env:"SIM_DEV_API_PORT" envDefault:"0" flag:"api-port" help:"port of the HTTP API; 0 picks a free one"`
	API          apiSettings
	Worker       workerConfig
	HTTPAddr     string `env:"SIM_HTTP_ADDR" envDefault:"127.0.0.1:0" flag:"http-addr" help:"address of /healthz, /readyz and /metrics (host:port; port 0 picks a free one; 'off' disables)"`
}

// Validate: ports are ports.
func (d *devConfig) Validate(c *cli.Check) {
	for _, p := range []*int{&d.NATSPort, &d.PGPort, &d.APIPort} {
		if *p < 0 || *p > 65535 {
			c.Fail(p, "%d is not a port number (0 picks a free one)", *p)
		}
	}
}

// syncInterval is the JetStream file store's fsync interval: every write
// ("always"), or a duration.
type syncInterval struct {
	always bool
	every  time.Duration
}

func (s *syncInterval) UnmarshalText(b []byte) error {
	if string(b) == "always" {
		*s = syncInterval{always: true}
		return nil
	}
	d, err := time.ParseDuration(string(b))
	if err != nil || d < 0 {
		return errors.New("is neither 'always' nor a duration (e.g. 10s, 2m)")
	}
	*s = syncInterval{every: d}
	return nil
}

func (s syncInterval) MarshalText() ([]byte, error) {
	if s.always {
		return []byte("always"), nil
	}
	return []byte(s.every.String()), nil
}

func devCmd(ctx context.Context, cfg *devConfig, _ []string, stdout, stderr io.Writer) error {
	st, err := start(ctx, cfg, cfg.Worker.LogLevel, "simworker-dev", true, stderr)
	if err != nil {
		return err
	}
	defer st.stop()
	log := st.log

	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	prev := loadDevPorts(dir)
	log.Info("starting private PostgreSQL", zap.String("data_dir", filepath.Join(dir, "pg")))
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: filepath.Join(dir, "pg"), Port: reuse(cfg.PGPort, prev.PG), Log: io.Discard})
	if err != nil {
		return err
	}
	defer pg.Stop()
	dbURL, err := pg.Database(ctx, "simworker")
	if err != nil {
		return err
	}

	// The NATS server takes only its own credentials: a local process
	// without them can neither publish commands nor forge outcome events,
	// which the API takes for the worker's.
	natsPassword, err := devSecret(dir, "nats-password")
	if err != nil {
		return err
	}
	ns, err := devstack.StartNATS(devstack.NATSOptions{Port: reuse(cfg.NATSPort, prev.NATS), StoreDir: filepath.Join(dir, "nats"),
		SyncInterval: cfg.SyncInterval.every, SyncAlways: cfg.SyncInterval.always, User: "dev", Password: natsPassword})
	if err != nil {
		return err
	}
	defer ns.Shutdown()

	pool, err := repo.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	fx, err := domain.ParseFixtures(deploy.DemoFixtures)
	if err != nil {
		return err
	}
	if _, err := repo.New(pool).LoadFixtures(ctx, fx); err != nil {
		return err
	}
	nc, err := cli.NATS{URL: ns.URL}.Connect("simworker-dev", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	tokens, err := devTokens(ctx, app.New(repo.New(pool), ""), fx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(reuse(cfg.APIPort, prev.API)))
	if err != nil {
		return fmt.Errorf("SIM_DEV_API_PORT %d: %w", cfg.APIPort, err)
	}
	apiURL := "http://" + ln.Addr().String()
	apiDone := make(chan error, 1)
	go func() { apiDone <- serveAPI(ctx, log, nc, pool, ln, cfg.API, "off") }()

	httpAddr := cfg.HTTPAddr
	if httpAddr == "127.0.0.1:0" { // the default: the previous run's port when free
		httpAddr = "127.0.0.1:" + strconv.Itoa(reuse(0, prev.Ops))
	}
	err = work(ctx, log, nc, pool, &cfg.Worker, httpAddr, func(opsAddr string) {
		if err := (devPorts{NATS: portOf(ns.URL), PG: portOf(dbURL), API: portOf(apiURL), Ops: portOf(opsAddr)}).save(dir); err != nil {
			log.Warn("could not keep the ports for the next run", zap.Error(err))
		}
		opsURL := ""
		if opsAddr != "" {
			opsURL = "http://" + opsAddr
		}
		envFile, err := writeDevEnv(dir, ns.URL, dbURL, apiURL, opsURL, tokens)
		if err != nil {
			log.Warn("could not write the env file", zap.Error(err))
			envFile = ""
		}
		devBanner(stdout, dir, ns.URL, dbURL, apiURL, opsAddr, tokens, envFile)
	})
	if aerr := <-apiDone; err == nil {
		err = aerr
	}
	return err
}

// devSecret is a random secret kept in dir/name (readable by its owner
// only), made on the first run: later runs keep it, so a shell that sourced
// the env file of an earlier run still connects.
func devSecret(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

// devTokens makes a fresh API token for each demo user, named "simworker
// dev", and revokes those of earlier runs: a token is shown once, so a new
// run prints new ones.
func devTokens(ctx context.Context, a *app.App, fx *domain.Fixtures) (map[string]string, error) {
	old, err := a.Tokens(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, t := range old {
		if t.Name == devTokenName && t.RevokedAt == nil {
			if _, err := a.RevokeToken(ctx, t.ID); err != nil {
				return nil, err
			}
		}
	}
	tokens := map[string]string{}
	for _, u := range fx.Users {
		tok, _, err := a.CreateToken(ctx, u.ID, devTokenName, time.Time{})
		if err != nil {
			return nil, err
		}
		tokens[u.ID] = tok
	}
	return tokens, nil
}

const devTokenName = "simworker dev"

// devBanner says where everything is and how to try it, once the worker runs.
func devBanner(w io.Writer, dir, natsURL, dbURL, apiURL, opsAddr string, tokens map[string]string, envFile string) {
	ops := "off"
	if opsAddr != "" {
		ops = "http://" + opsAddr + " (/healthz, /readyz, /metrics)"
	}
	fmt.Fprintf(w, `
simworker dev is ready (Ctrl-C stops it; data is kept in %s).

  HTTP API:      %s  (reference: %[2]s/docs)
  NATS:          %s
  PostgreSQL:    %s
  worker ops:    %s

Create a SIM over HTTP (demo data: user u-alice may create SIMs for device d-1):
  curl -si -X POST %[2]s/v1/sims -H 'Authorization: Bearer %[6]s' -H 'Content-Type: application/json' -H 'Idempotency-Key: first-sim' -d '{"device_id": "d-1", "iccid": "8944500102198304826"}'

API tokens of the demo users (made for this run):
`, dir, apiURL, natsURL, dbURL, ops, tokens["u-alice"])
	users := make([]string, 0, len(tokens))
	for u := range tokens {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		fmt.Fprintf(w, "  %-8s %s\n", u, tokens[u])
	}
	if envFile != "" {
		fmt.Fprintf(w, "\nIn another shell: source %s  (NATS_URL, DATABASE_URL, SIM_API_URL, SIM_OPS_URL, SIM_TOKEN_<USER>;\nthe next run keeps these ports when they are free)\n", envFile)
	}
	fmt.Fprintf(w, `
With the nats CLI:
  export NATS_URL=%[1]s DATABASE_URL='%[2]s'
  %[3]s --server %[1]s sub 'sim.events.>'      # in another terminal: watch the outcome events
  %[3]s --server %[1]s pub sim.commands.create -H Nats-Msg-Id:c-0001 '{"command_id": "c-0001", "actor_id": "u-alice", "sim": {"device_id": "d-1", "iccid": "8944500102198304827"}}'
%[4]s
`, natsURL, dbURL, natsCLI(), natsHint())
}

// natsCLI is how to call the nats CLI here: "nats" when it is on PATH, else
// its path under GOPATH/bin when `make run` installed it there.
func natsCLI() string {
	if _, err := exec.LookPath("nats"); err == nil {
		return "nats"
	}
	if p := goBinNats(); p != "" {
		return p
	}
	return "nats"
}

func natsHint() string {
	if _, err := exec.LookPath("nats"); err == nil || goBinNats() != "" {
		return ""
	}
	return "\nThe nats CLI is not installed yet: make run installs it in the background (a minute or two; then it is\n" +
		"$(go env GOPATH)/bin/nats); by hand: go install github.com/nats-io/natscli/nats@v0.5.0\n"
}

func goBinNats() string {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", "nats")
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	return ""
}
