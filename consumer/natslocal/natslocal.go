// Package natslocal runs in-process nats-servers with JetStream, for
// `simworker dev` and the test suites: a single server, or a three-node
// cluster on loopback. They are the real server, not a fake.
package natslocal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure a server.
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
	// Name of the server (default simworker-dev).
	Name string
	// Cluster settings: a cluster name, this node's route port and the
	// route URLs of all nodes. Empty ClusterName means no cluster.
	ClusterName string
	ClusterPort int
	Routes      []string
}

// Server is a running in-process nats-server.
type Server struct {
	*server.Server
	URL  string
	opts Options
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

func (s *Server) start() error {
	o := s.opts
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:   o.Name,
		Host:         o.Host,
		Port:         port,
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		NoSigs:       true,
		MaxPayload:   1 << 20,
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
	// A restart must come back on the same port, for clients to find it.
	if s.opts.Port == 0 {
		s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// Stop shuts the server down and keeps its store, for Restart.
func (s *Server) Stop() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Restart starts a stopped server again with the same port and store.
func (s *Server) Restart() error { return s.start() }

// Shutdown stops the server and removes a temporary store.
func (s *Server) Shutdown() {
	if s.Server != nil && s.Server.Running() {
		s.Stop()
	}
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.temp != "" {
		_ = os.RemoveAll(s.temp)
	}
}

// StartCluster starts an n-node JetStream cluster on loopback, its stores
// under root (removed by the servers' Shutdown when root is empty), and waits
// until JetStream has a meta leader.
func StartCluster(n int, root string) ([]*Server, error) {
	temp := ""
	if root == "" {
		dir, err := os.MkdirTemp("", "simworker-nats-cluster-")
		if err != nil {
			return nil, err
		}
		root, temp = dir, dir
	}
	clientPorts, routePorts := make([]int, n), make([]int, n)
	var routes []string
	for i := 0; i < n; i++ {
		var err error
		if clientPorts[i], err = freePort(); err != nil {
			return nil, err
		}
		if routePorts[i], err = freePort(); err != nil {
			return nil, err
		}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	servers := make([]*Server, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			s, err := Start(Options{
				Name: fmt.Sprintf("node-%c", 'a'+i), Port: clientPorts[i], StoreDir: filepath.Join(root, fmt.Sprint(i)),
				ClusterName: "sim", ClusterPort: routePorts[i], Routes: routes,
			})
			servers[i] = s
			errs <- err
		}()
	}
	var firstErr error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
			}
		}
		return nil, firstErr
	}
	if temp != "" {
		servers[0].temp = temp
	}
	if err := WaitClusterReady(servers, 60*time.Second); err != nil {
		for _, s := range servers {
			s.Shutdown()
		}
		return nil, err
	}
	return servers, nil
}

// WaitClusterReady waits until every running node agrees on one JetStream
// meta leader that sees all its peers current.
func WaitClusterReady(servers []*Server, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if clusterReady(servers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream cluster not ready within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func clusterReady(servers []*Server) bool {
	leader := ""
	for _, s := range servers {
		if !s.Running() {
			continue
		}
		jsz, err := s.Jsz(&server.JSzOptions{})
		if err != nil || jsz.Meta == nil || jsz.Meta.Leader == "" || leader != "" && jsz.Meta.Leader != leader {
			return false
		}
		leader = jsz.Meta.Leader
		if s.Name() == leader {
			current := 0
			for _, p := range jsz.Meta.Replicas {
				if p.Current {
					current++
				}
			}
			if current < len(servers)-1 {
				return false
			}
		}
	}
	return leader != ""
}

// ClusterURL is the comma-separated client URLs of the nodes.
func ClusterURL(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
	}
	return strings.Join(urls, ",")
}

// Name is the server name (as JetStream reports stream leaders).
func (s *Server) Name() string { return s.opts.Name }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
