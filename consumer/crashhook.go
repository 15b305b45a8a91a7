//go:build faulthook

package consumer

import (
	"os"
	"time"

	"simworker/domain"
)

// CrashDevice is the device id that makes a worker built with the
// faulthook tag die while deciding the command: a panic in a goroutine of
// its own, which nothing can recover, as a fatal bug in a dependency would.
// Only the fault tests build with it.
const CrashDevice = "faulthook-crash"

func init() {
	crashHook = func(env domain.Envelope) {
		if env.Reject == nil && env.Command.Sim.DeviceID == CrashDevice {
			if f, err := os.OpenFile(os.Getenv("SIM_FAULTHOOK_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				_, _ = f.WriteString(env.CommandID + "\n")
				f.Close()
			}
			go func() { panic("faulthook: crashing on " + env.CommandID) }()
			time.Sleep(time.Minute)
		}
	}
}
