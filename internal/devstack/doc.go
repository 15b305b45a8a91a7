// Package devstack runs the real infrastructure on this machine for
// `simworker dev`, the benchmarks and the test suites: a private PostgreSQL
// cluster started from the local server binaries and an in-process
// nats-server with JetStream. Both listen only on 127.0.0.1, on a free port
// unless one is given, and never touch what they did not create.
package devstack

import "net"

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
