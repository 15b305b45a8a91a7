// Package httpserve makes the HTTP servers of the programs (the API and the
// ops endpoint) with the limits a hostile or broken client meets: a
// connection that stalls, sending or reading, is closed within a minute,
// and a header section is at most 64 KiB.
package httpserve

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// The limits. Go's own defaults leave a never-reading client's connection
// open for ever (no WriteTimeout), idle keep-alive connections open for
// minutes, and headers up to 1 MiB per connection.
const (
	// ReadHeaderTimeout bounds the request line and headers: a slowloris.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds a whole request, body included, from its first
	// byte: a client trickling a body.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds writing an answer once it is ready (see
	// AnswerDeadline): a client that never reads is let go after it, and a
	// request that waits for its outcome first is not cut short by it.
	WriteTimeout = 20 * time.Second
	// IdleTimeout closes a keep-alive connection that sends nothing.
	IdleTimeout = 30 * time.Second
	// MaxHeaderBytes bounds the request line and headers together: 64 KiB.
	// net/http allows 4096 bytes beyond its setting, hence the difference.
	MaxHeaderBytes = 64<<10 - 4096
	// SendBuffer bounds the kernel's send buffer of each connection: a client
	// that stops reading holds at most this much of the server's memory, and
	// meets WriteTimeout once it is full (the kernel would otherwise grow it
	// to megabytes, and a never-reading client be answered into it for a
	// long while). 256 KiB keeps 2.5 MB/s on a 100 ms round trip.
	SendBuffer = 256 << 10
)

// Server is an http.Server with the limits, and a count of its open
// connections.
type Server struct {
	*http.Server
	open atomic.Int64
}

// New serves h with the limits. Every answer's write deadline is
// WriteTimeout after the handler starts; a handler that waits longer before
// answering (the API's wait for an outcome) calls AnswerDeadline first.
func New(h http.Handler) *Server {
	s := &Server{}
	s.Server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			AnswerDeadline(w)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.open.Add(-1)
			}
		},
	}
	return s
}

// Serve accepts connections on ln, each with its send buffer bounded
// (SendBuffer), and serves them.
func (s *Server) Serve(ln net.Listener) error { return s.Server.Serve(boundedListener{ln}) }

// boundedListener sets each accepted TCP connection's send buffer.
type boundedListener struct{ net.Listener }

func (l boundedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(SendBuffer)
	}
	return c, err
}

// Open is how many connections the server holds open.
func (s *Server) Open() int64 { return s.open.Load() }

// AnswerDeadline gives the answer about to be written WriteTimeout to
// reach a client that reads it: called when the answer is ready, so that
// however long the request waited before, a client that stops reading
// holds the connection at most that long.
func AnswerDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(WriteTimeout))
}
