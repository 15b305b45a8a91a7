package repo

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The deadlines of a connection to PostgreSQL, so that a dead link is
// noticed in seconds rather than after TCP's minutes-long timeouts. Each
// call's own deadline (the worker's SIM_DB_TIMEOUT for a batch) covers a
// link that stays up but carries nothing; these cover the rest.
const (
	// ConnectTimeout bounds dialling and the start-up exchange of a new
	// connection, unless the URL sets connect_timeout.
	ConnectTimeout = 5 * time.Second
	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount: TCP keepalive
	// probes an idle connection after 5 s, every 5 s, and gives up after 3
	// unanswered (about 20 s), instead of Linux's 2 hours and 11 minutes.
	KeepAliveIdle     = 5 * time.Second
	KeepAliveInterval = 5 * time.Second
	KeepAliveCount    = 3
	// UserTimeout (TCP_USER_TIMEOUT, Linux) closes a connection whose sent
	// data stays unacknowledged that long, instead of retransmitting for
	// about 15 minutes.
	UserTimeout = 10 * time.Second
)

// deadlines sets the connect timeout and the TCP settings of a connection
// configuration.
func deadlines(cfg *pgx.ConnConfig, url string) {
	if !strings.Contains(url, "connect_timeout") {
		cfg.ConnectTimeout = ConnectTimeout
	}
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: KeepAliveIdle, Interval: KeepAliveInterval, Count: KeepAliveCount},
		Control: func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil // a Unix socket has no TCP to time out
			}
			var serr error
			err := c.Control(func(fd uintptr) { serr = setUserTimeout(fd, UserTimeout) })
			if err != nil {
				return err
			}
			return serr
		},
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}
