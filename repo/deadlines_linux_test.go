package repo_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"simworker/repo"
	"simworker/repo/repotest"
)

// TestTCPDeadlines: every connection to PostgreSQL probes an idle peer
// after KeepAliveIdle and gives up on unacknowledged data after
// UserTimeout, instead of Linux's 2 hours of idleness and 15 minutes of
// retransmissions.
func TestTCPDeadlines(t *testing.T) {
	t.Parallel()
	_, dbURL := repotest.NewDB(t)
	raw, err := tcpConn(t, dbURL).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ level, opt, value int }{
		"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(repo.KeepAliveIdle.Seconds())},
		"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(repo.KeepAliveInterval.Seconds())},
		"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, repo.KeepAliveCount},
		"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(repo.UserTimeout.Milliseconds())},
	}
	for name, w := range want {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w.level, w.opt) }); err != nil || gerr != nil {
			t.Fatalf("%s: %v %v", name, err, gerr)
		}
		if got != w.value {
			t.Errorf("%s = %d, want %d", name, got, w.value)
		}
	}
}
