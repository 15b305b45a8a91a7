package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"simworker/cmd/internal/cli"
	"simworker/repo"
)

// probeConfig is the configuration of simworker probe.
type probeConfig struct {
	URL string `env:"SIM_PROBE_URL" envDefault:"http://127.0.0.1:8080/readyz" flag:"url" help:"what to probe: a worker's /readyz or /healthz"`
}

func probeCmd(ctx context.Context, cfg *probeConfig, _ []string, _, _ io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", cfg.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// migrateConfig is the configuration of simworker migrate.
type migrateConfig struct {
	Database cli.Database
}

func migrateCmd(ctx context.Context, cfg *migrateConfig, _ []string, stdout, _ io.Writer) error {
	pool, err := repo.Open(ctx, cfg.Database.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := repo.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
