package consumertest

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"simworker/internal/devstack"
)

// Node is an in-process nats-server that a fault test stops and starts
// again on the same port and store.
type Node struct {
	*devstack.NATS
	opts devstack.NATSOptions
}

// StartNode starts one server (see devstack.StartNATS).
func StartNode(o devstack.NATSOptions) (*Node, error) {
	s, err := devstack.StartNATS(o)
	if err != nil {
		return nil, err
	}
	return &Node{NATS: s, opts: s.Options()}, nil
}

// Shutdown stops the node's current server (the one a Restart made, if any)
// and removes a temporary store.
func (n *Node) Shutdown() { n.NATS.Shutdown() }

// Restart starts a stopped node again with the same port and store.
func (n *Node) Restart() error {
	s, err := devstack.StartNATS(n.opts)
	if err != nil {
		return err
	}
	n.NATS = s
	return nil
}

// StartCluster starts an n-node JetStream cluster on loopback, its stores
// under root, and waits until JetStream has a meta leader.
func StartCluster(n int, root string) ([]*Node, error) {
	clientPorts, routePorts := make([]int, n), make([]int, n)
	var routes []string
	for i := 0; i < n; i++ {
		var err error
		if clientPorts[i], err = devstack.FreePort(); err != nil {
			return nil, err
		}
		if routePorts[i], err = devstack.FreePort(); err != nil {
			return nil, err
		}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	nodes := make([]*Node, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			s, err := StartNode(devstack.NATSOptions{
				Name: fmt.Sprintf("node-%c", 'a'+i), Port: clientPorts[i], StoreDir: filepath.Join(root, fmt.Sprint(i)),
				ClusterName: "sim", ClusterPort: routePorts[i], Routes: routes,
			})
			nodes[i] = s
			errs <- err
		}()
	}
	var firstErr error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = waitClusterReady(nodes, 60*time.Second)
	}
	if firstErr != nil {
		for _, s := range nodes {
			if s != nil {
				s.Shutdown()
			}
		}
		return nil, firstErr
	}
	return nodes, nil
}

// waitClusterReady waits until every running node agrees on one JetStream
// meta leader that sees all its peers current.
func waitClusterReady(nodes []*Node, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !clusterReady(nodes) {
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream cluster not ready within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func clusterReady(nodes []*Node) bool {
	leader := ""
	for _, s := range nodes {
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
			if current < len(nodes)-1 {
				return false
			}
		}
	}
	return leader != ""
}

// ClusterURL is the comma-separated client URLs of the nodes.
func ClusterURL(nodes []*Node) string {
	urls := make([]string, len(nodes))
	for i, s := range nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
	}
	return strings.Join(urls, ",")
}
