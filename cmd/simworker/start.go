package main

import (
	"context"
	"io"

	"go.uber.org/zap"

	"simworker/cmd/internal/cli"
)

// started is what each long-running command sets up first: its logger, its
// one settings line (secrets masked), tracing as the OTEL_* variables ask,
// and a CPU profile when SIM_CPU_PROFILE names a file.
type started struct {
	log  *zap.Logger
	stop func()
}

// start sets them up; console gives readable log lines (simworker dev)
// instead of JSON. stop undoes them, the logger last.
func start(ctx context.Context, cfg any, level, service string, console bool, stderr io.Writer) (*started, error) {
	newLogger := cli.Logger
	if console {
		newLogger = cli.ConsoleLogger
	}
	log, err := newLogger(level, stderr)
	if err != nil {
		return nil, err
	}
	log.Info("settings", cli.Fields(cfg)...)
	stopTracing, tracing, err := cli.Tracing(ctx, service)
	if err != nil {
		return nil, err
	}
	if tracing {
		log.Info("tracing: exporting spans over OTLP (OTEL_* variables)")
	}
	stopProfile, err := cli.CPUProfile()
	if err != nil {
		stopTracing()
		return nil, err
	}
	return &started{log: log, stop: func() {
		stopProfile()
		stopTracing()
		_ = log.Sync()
	}}, nil
}
