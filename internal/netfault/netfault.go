// Package netfault puts a real TCP fault proxy, Shopify's toxiproxy run in
// process, between a client and a dependency, for the network fault tests:
// latency with jitter, a silent link (bytes dropped, the connection left
// open), resets mid-transaction, a COMMIT whose answer never comes, and a
// link cut to a trickle.
package netfault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
	proxies    atomic.Int64
)

// Link is one proxy: clients connect to Addr, which forwards to the
// upstream through the toxics in force.
type Link struct {
	Addr  string
	proxy *toxiproxy.Proxy
}

// Start proxies a free port on 127.0.0.1 to upstream (host:port).
func Start(upstream string) (*Link, error) {
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	})
	p := toxiproxy.NewProxy(server, fmt.Sprintf("link-%d", proxies.Add(1)), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, err
	}
	return &Link{Addr: p.Listen, proxy: p}, nil
}

// Close stops the proxy and closes every connection through it.
func (l *Link) Close() { l.proxy.Stop() }

// Fault is a toxic in force; Heal removes it.
type Fault struct {
	link     *Link
	names    []string
	wrappers []*toxics.ToxicWrapper
}

// Cuts is how many COMMIT answers a CutCommits fault dropped.
func (f *Fault) Cuts() int64 {
	var n int64
	for _, w := range f.wrappers {
		if c, ok := w.Toxic.(*commitCut); ok {
			n += c.cut.Load()
		}
	}
	return n
}

// Heal removes the fault; connections made through it carry on.
func (f *Fault) Heal() error {
	for _, n := range f.names {
		if err := f.link.proxy.Toxics.RemoveToxic(context.Background(), n); err != nil {
			return err
		}
	}
	return nil
}

// add puts a toxic of type typ on both directions ("upstream": client to
// server, "downstream": server to client) or on the ones given.
func (l *Link) add(typ string, attrs map[string]any, streams ...string) (*Fault, error) {
	if len(streams) == 0 {
		streams = []string{"upstream", "downstream"}
	}
	f := &Fault{link: l}
	for _, s := range streams {
		name := fmt.Sprintf("%s_%s", typ, s)
		body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": s, "toxicity": 1.0, "attributes": attrs})
		if err != nil {
			return nil, err
		}
		w, err := l.proxy.Toxics.AddToxicJson(bytes.NewReader(body))
		if err != nil {
			_ = f.Heal()
			return nil, fmt.Errorf("toxic %s: %w", name, err)
		}
		f.names, f.wrappers = append(f.names, name), append(f.wrappers, w)
	}
	return f, nil
}

// Silence drops every byte both ways and leaves the connections open, new
// ones included: a blackhole. Healing lets bytes through again on the same
// connections; what was dropped stays lost, as a client stuck waiting for
// an answer to a dropped request finds.
func (l *Link) Silence() (*Fault, error) { return l.add("silence", nil) }

// Latency delays every chunk both ways by ms, give or take jitter ms.
func (l *Link) Latency(ms, jitter int) (*Fault, error) {
	return l.add("latency", map[string]any{"latency": ms, "jitter": jitter})
}

// Bandwidth cuts the link to kbps kilobytes per second each way.
func (l *Link) Bandwidth(kbps int) (*Fault, error) {
	return l.add("bandwidth", map[string]any{"rate": kbps})
}

// ResetPeer resets every connection (TCP RST) ms after the server first
// sends on it, so connections die mid-transaction.
func (l *Link) ResetPeer(ms int) (*Fault, error) {
	return l.add("reset_peer", map[string]any{"timeout": ms}, "downstream")
}

// CutCommits is for a PostgreSQL link: every other answer to a COMMIT is
// dropped and the connection closed, after the server committed. The client
// cannot know whether its transaction committed: the ambiguous commit.
func (l *Link) CutCommits() (*Fault, error) { return l.add("commit_cut", nil, "downstream") }

// silence is a blackhole that, unlike toxiproxy's timeout toxic, does not
// close the connection when it is removed.
type silence struct{}

func (silence) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
		}
	}
}

// commitCut drops a chunk from PostgreSQL that holds the CommandComplete
// of a COMMIT ('C', length 11, "COMMIT\0") and closes the connection, for
// every other such chunk across all connections.
type commitCut struct{ seen, cut atomic.Int64 }

var commitComplete = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

func (t *commitCut) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if bytes.Contains(c.Data, commitComplete) && t.seen.Add(1)%2 == 1 {
				t.cut.Add(1)
				stub.Close()
				return
			}
			stub.Output <- c
		}
	}
}

func init() {
	// toxiproxy's toxics log through zerolog's global logger, at trace level.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	toxics.Register("silence", new(silence))
	toxics.Register("commit_cut", new(commitCut))
}
