package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"

	"simworker/app"
	"simworker/internal/devstack"
	"simworker/repo"
	"simworker/repo/repotest"
)

// stallLimit is the contract's bound: a connection that stalls, sending or
// reading, is closed within 60 seconds.
const stallLimit = 60 * time.Second

// TestStalledConnectionsAreClosed: on the API port and the ops port of a
// real `simworker api` process, a slowloris (headers a byte at a time), a
// body trickled by a client with a valid token, a client that pipelines
// requests and never reads the answers, and an idle keep-alive connection
// are each closed by the server within 60 seconds. Whether the server closed
// a connection is read off the client's socket (the kernel's TCP state), so
// that the never-reading client never reads.
func TestStalledConnectionsAreClosed(t *testing.T) {
	skipShort(t)
	pool, apiAddr, opsAddr := startAPIProcess(t, "stalls")
	tok, _, err := app.New(repo.New(pool), "").CreateToken(context.Background(), "u-alice", "e2e", time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	ports := []struct{ name, addr, bigGET string }{
		{"api", apiAddr, "/openapi.yaml"}, // about 40 KB each
		{"ops", opsAddr, "/metrics"},
	}
	for _, p := range ports {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			t.Run("slowloris", func(t *testing.T) {
				t.Parallel()
				c := dial(t, p.addr, 0)
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				start := time.Now()
				closedWithin(t, c, start, func() { _, _ = c.Write([]byte("a")) }) // a byte a poll
			})
			t.Run("body trickled", func(t *testing.T) {
				t.Parallel()
				c := dial(t, p.addr, 0)
				fmt.Fprintf(c, "POST /v1/sims HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", tok)
				start := time.Now()
				closedWithin(t, c, start, func() { _, _ = c.Write([]byte(" ")) })
			})
			t.Run("never reads", func(t *testing.T) {
				t.Parallel()
				for range 3 {
					c := dial(t, p.addr, 4096)
					start := time.Now()
					go func() { // pipelined requests, answers never read
						for range 300 {
							if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p.bigGET); err != nil {
								return
							}
						}
					}()
					defer func(c *net.TCPConn, start time.Time) { closedWithin(t, c, start, nil) }(c, start)
				}
			})
			t.Run("idle keep-alive", func(t *testing.T) {
				t.Parallel()
				c := dial(t, p.addr, 0)
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				start := time.Now()
				closedWithin(t, c, start, nil)
			})
		})
	}
}

// TestHeaderSectionOver64KiB: 100 KB of headers get 431 on both ports;
// 60 KB do not.
func TestHeaderSectionOver64KiB(t *testing.T) {
	skipShort(t)
	_, apiAddr, opsAddr := startAPIProcess(t, "headers")
	for _, addr := range []string{apiAddr, opsAddr} {
		for _, tt := range []struct {
			size   int
			status int
		}{{100_000, 431}, {60_000, 200}} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
			if addr == apiAddr {
				req.URL.Path = "/openapi.yaml"
			}
			for i := 0; i < tt.size/1000; i++ {
				req.Header.Add(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", 990))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s, %d bytes of headers: %v", addr, tt.size, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%s, %d bytes of headers: %d, want %d", addr, tt.size, resp.StatusCode, tt.status)
			}
		}
	}
}

// startAPIProcess starts `simworker api` on a database of its own with the
// demo data and a NATS server of its own, and returns the database and the
// addresses of the API and its ops endpoint, both listening.
func startAPIProcess(t *testing.T, name string) (pool *pgxpool.Pool, apiAddr, opsAddr string) {
	t.Helper()
	dbURL, pool := newDatabase(t, name)
	repotest.LoadDemo(t, pool)
	ns, err := devstack.StartNATS(devstack.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	apiAddr, opsAddr = "127.0.0.1:"+itoa(freePort(t)), "127.0.0.1:"+itoa(freePort(t))
	api := startProcCmd(t, "api", "NATS_URL="+ns.URL, "DATABASE_URL="+dbURL, "SIM_API_ADDR="+apiAddr, "SIM_HTTP_ADDR="+opsAddr)
	waitListening(t, api, apiAddr)
	waitListening(t, api, opsAddr)
	return pool, apiAddr, opsAddr
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening within 60 s:\n%s", addr, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial connects to addr, with a receive buffer of rcvbuf bytes when not 0
// (a client that reads nothing fills it soon).
func dial(t *testing.T, addr string, rcvbuf int) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf == 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// closedWithin fails the test unless the server closes c within stallLimit
// of start, seen in the client socket's TCP state (the server's FIN or RST)
// without reading from it; nudge, when not nil, is called at each poll.
func closedWithin(t *testing.T, c *net.TCPConn, start time.Time, nudge func()) {
	t.Helper()
	for {
		if !established(t, c) {
			t.Logf("closed by the server after %s", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > stallLimit {
			t.Fatalf("still open after %s", stallLimit)
		}
		if nudge != nil {
			nudge()
		}
		time.Sleep(time.Second)
	}
}

func established(t *testing.T, c *net.TCPConn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var state uint8
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if ierr == nil {
			state = info.State
		}
	}); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		return false // the socket is gone
	}
	return state == unix.BPF_TCP_ESTABLISHED
}
