package cli

import (
	"os"
	"runtime/pprof"
)

// CPUProfile starts a CPU profile of the whole run when SIM_CPU_PROFILE
// names a file (undocumented in --help: a tool for make bench); the
// allocations go next to it, in the same file name with ".allocs". The
// returned function stops both.
func CPUProfile() (stop func(), err error) {
	path := os.Getenv("SIM_CPU_PROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if f, err := os.Create(path + ".allocs"); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}, nil
}
