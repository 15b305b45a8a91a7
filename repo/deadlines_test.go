package repo_test

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"simworker/internal/netfault"
	"simworker/repo"
	"simworker/repo/repotest"
)

// throughLink returns dbURL with its host and port replaced by a fault
// proxy's, and the proxy.
func throughLink(t *testing.T, dbURL string) (string, *netfault.Link) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	link, err := netfault.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	u.Host = link.Addr
	return u.String(), link
}

// TestConnectTimeout: a new connection into a silent link (the server
// never answers the start-up) fails after ConnectTimeout, even for a caller
// without a deadline of its own.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	_, dbURL := repotest.NewDB(t)
	proxied, link := throughLink(t, dbURL)
	if _, err := link.Silence(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		pool, err := repo.Open(context.Background(), proxied)
		if err != nil {
			done <- err
			return
		}
		defer pool.Close()
		done <- pool.Ping(context.Background())
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("connected through a silent link")
		}
		if took := time.Since(start); took < repo.ConnectTimeout/2 || took > repo.ConnectTimeout+3*time.Second {
			t.Fatalf("gave up after %s, want about %s", took, repo.ConnectTimeout)
		}
	case <-time.After(repo.ConnectTimeout + 10*time.Second):
		t.Fatalf("still connecting %s after the link went silent", time.Since(start))
	}
}

// tcpConn is the TCP connection under a pool connection.
func tcpConn(t *testing.T, dbURL string) *net.TCPConn {
	t.Helper()
	pool, err := repo.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	tc, ok := c.Conn().PgConn().Conn().(*net.TCPConn)
	if !ok {
		t.Fatalf("the test database is reached through %T, not TCP", c.Conn().PgConn().Conn())
	}
	return tc
}
