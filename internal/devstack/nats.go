package devstack

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configure an in-process nats-server.
type NATSOptions struct {
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
	// MaxStore bounds JetStream's file storage in bytes (max_file_store);
	// 0 is nats-server's default, 75% of the free disk.
	MaxStore int64
	// MaxPayload is the largest message the server takes (max_payload);
	// 0 means 1 MiB, nats-server's default.
	MaxPayload int32
	// User and Password, when set, are the only credentials the server
	// accepts: no client connects without them.
	User, Password string
	// Name of the server (default simworker-dev).
	Name string
	// Cluster settings: a cluster name, this node's route port and the
	// route URLs of all nodes. Empty ClusterName means no cluster.
	ClusterName string
	ClusterPort int
	Routes      []string
}

// NATS is a running in-process nats-server.
type NATS struct {
	*server.Server
	URL  string
	opts NATSOptions
	temp string
}

// StartNATS starts the server and waits until it accepts connections.
func StartNATS(o NATSOptions) (*NATS, error) {
	s := &NATS{}
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
	if o.Name == "" {
		o.Name = "simworker-dev"
	}
	s.opts = o
	if err := s.start(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

func (s *NATS) start() error {
	o := s.opts
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:        o.Name,
		Host:              o.Host,
		Port:              port,
		JetStream:         true,
		StoreDir:          o.StoreDir,
		SyncInterval:      o.SyncInterval,
		SyncAlways:        o.SyncAlways,
		JetStreamMaxStore: o.MaxStore,
		NoSigs:            true,
		MaxPayload:        1 << 20,
		Username:          o.User,
		Password:          o.Password,
	}
	if o.MaxPayload > 0 {
		opts.MaxPayload = o.MaxPayload
	}
	if o.ClusterName != "" {
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: o.Host, Port: o.ClusterPort}
		opts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return errors.New("nats-server did not become ready within 30s")
	}
	s.Server, s.URL = ns, ns.ClientURL()
	if o.User != "" { // the credentials in the URL, as clients (and the nats CLI) take them
		if u, err := url.Parse(s.URL); err == nil {
			u.User = url.UserPassword(o.User, o.Password)
			s.URL = u.String()
		}
	}
	// A restart must come back on the same port, for clients to find it.
	if s.opts.Port == 0 {
		s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// Options are the server's options, its port resolved: starting a server
// with them again (once this one stopped) brings it back on the same port
// and store.
func (s *NATS) Options() NATSOptions { return s.opts }

// Stop shuts the server down and keeps its store.
func (s *NATS) Stop() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Shutdown stops the server and removes a temporary store.
func (s *NATS) Shutdown() {
	if s.Server != nil && s.Server.Running() {
		s.Stop()
	}
	s.cleanup()
}

func (s *NATS) cleanup() {
	if s.temp != "" {
		_ = os.RemoveAll(s.temp)
	}
}

// Name is the server name (as JetStream reports stream leaders).
func (s *NATS) Name() string { return s.opts.Name }
