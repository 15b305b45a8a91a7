//go:build faulthook

package main

import (
	"context"
	"os"
	"time"

	"simworker/app"
	"simworker/consumer"
	"simworker/domain"
)

// crashDevice is the device id that makes a worker built with the
// faulthook tag die while deciding the command: a panic in a goroutine of
// its own, which nothing can recover, as a fatal bug in a dependency would.
// Only the fault tests (e2e/crash_test.go) build with it; the product's
// packages know nothing of it.
const crashDevice = "faulthook-crash"

func init() {
	handler = func(a *app.App) consumer.Handler { return crashing{a} }
}

// crashing is the application, dying on a command for crashDevice.
// Embedding keeps the application's optional interfaces (consumer.CrashCounter,
// consumer.OutcomeReplacer).
type crashing struct{ *app.App }

func (c crashing) Handle(ctx context.Context, envs []domain.Envelope) ([]domain.Outcome, error) {
	for _, env := range envs {
		if env.Reject == nil && env.Command.Sim.DeviceID == crashDevice {
			if f, err := os.OpenFile(os.Getenv("SIM_FAULTHOOK_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				_, _ = f.WriteString(env.CommandID + "\n")
				f.Close()
			}
			go func() { panic("faulthook: crashing on " + env.CommandID) }()
			time.Sleep(time.Minute)
		}
	}
	return c.App.Handle(ctx, envs)
}
