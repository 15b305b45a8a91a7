// Package natslocal runs an in-process nats-server with JetStream, for
// `simworker dev` and the test suite. It is the real server, not a fake.
package natslocal

import (
	"errors"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the server.
type Options struct {
	// Host to listen on; empty means 127.0.0.1.
	Host string
	// Port to listen on; 0 picks a free one.
	Port int
	// StoreDir holds JetStream's files; empty means a temporary directory,
	// removed by Shutdown.
	StoreDir string
	// SyncInterval is how often the file store fsyncs (nats-server's
	// sync_interval, default 2m); SyncAlways fsyncs every write.
	SyncInterval time.Duration
	SyncAlways   bool
}

// Server is a running in-process nats-server.
type Server struct {
	*server.Server
	URL  string
	temp string
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	s := &Server{}
	if o.StoreDir == "" {
		dir, err := os.MkdirTemp("", "simworker-nats-")
		if err != nil {
			return nil, err
		}
		o.StoreDir, s.temp = dir, dir
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:   "simworker-dev",
		Host:         o.Host,
		Port:         port,
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		NoSigs:       true,
		MaxPayload:   1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server did not become ready within 30s")
	}
	s.Server, s.URL = ns, ns.ClientURL()
	return s, nil
}

// Shutdown stops the server and removes a temporary store.
func (s *Server) Shutdown() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
	if s.temp != "" {
		_ = os.RemoveAll(s.temp)
	}
}
