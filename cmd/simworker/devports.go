package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// devPorts are the ports a simworker dev run used, kept in its data
// directory so that the next run takes them again when they are free: the
// URLs a person exported (or pasted) stay valid between runs.
type devPorts struct {
	NATS int `json:"nats"`
	PG   int `json:"postgres"`
	API  int `json:"api"`
	Ops  int `json:"ops"`
}

func portsFile(dir string) string { return filepath.Join(dir, "ports.json") }

// loadDevPorts reads the ports of the previous run (zero when none).
func loadDevPorts(dir string) devPorts {
	var p devPorts
	if b, err := os.ReadFile(portsFile(dir)); err == nil {
		_ = json.Unmarshal(b, &p)
	}
	return p
}

func (p devPorts) save(dir string) error {
	b, _ := json.Marshal(p)
	return os.WriteFile(portsFile(dir), b, 0o600)
}

// reuse is the port to ask for: the configured one, else the previous run's
// when nothing listens on it, else 0 (a free one).
func reuse(configured, previous int) int {
	if configured != 0 || previous == 0 {
		return configured
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(previous))
	if err != nil {
		return 0
	}
	ln.Close()
	return previous
}

// portOf is the port of a host:port or of a URL's host.
func portOf(addr string) int {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// writeDevEnv writes the env file a person sources in another shell to
// reach this run: NATS_URL, DATABASE_URL, SIM_API_URL, SIM_OPS_URL and a
// SIM_TOKEN_<USER> for each demo user. It is the data directory's "env".
func writeDevEnv(dir, natsURL, dbURL, apiURL, opsURL string, tokens map[string]string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# simworker dev, %s: source this file in another shell to reach this run\n", time.Now().Format(time.RFC3339))
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	for _, kv := range [][2]string{{"NATS_URL", natsURL}, {"DATABASE_URL", dbURL}, {"SIM_API_URL", apiURL}, {"SIM_OPS_URL", opsURL}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "export %s=%s\n", kv[0], quote(kv[1]))
		}
	}
	users := make([]string, 0, len(tokens))
	for u := range tokens {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		name := "SIM_TOKEN_" + strings.ToUpper(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, u))
		fmt.Fprintf(&b, "export %s=%s\n", name, quote(tokens[u]))
	}
	path := filepath.Join(dir, "env")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}
