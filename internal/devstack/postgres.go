package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configure a cluster.
type PostgresOptions struct {
	// DataDir holds the cluster; an existing cluster there is reused. Empty
	// means a new temporary directory, removed by Stop.
	DataDir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Fast turns off fsync and synchronous commit: for throwaway test
	// clusters only, never for data that matters.
	Fast bool
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// Postgres is a running private cluster.
type Postgres struct {
	URL     string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Port    int
	DataDir string
	bin     string
	cred    *syscall.Credential
	temp    bool
	opts    PostgresOptions
	cmd     *exec.Cmd
	done    chan struct{}
}

// BinDir finds the directory holding initdb and postgres: $PG_BINDIR, then
// `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin, then PATH.
func BinDir() (string, error) {
	has := func(dir string) bool {
		st, err := os.Stat(filepath.Join(dir, "initdb"))
		return err == nil && !st.IsDir()
	}
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("PG_BINDIR=%s holds no initdb", d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: " +
		"install them (Debian: apt-get install -y postgresql) or set PG_BINDIR")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// StartPostgres creates the cluster when needed and starts it, returning
// once it accepts connections. An existing cluster in opts.DataDir is reused
// (a stopped or crashed server starts again on its data). PostgreSQL refuses
// to run as root, so as root the cluster runs as the "postgres" user (or
// "nobody" when there is none).
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Postgres{bin: bin, opts: opts}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			return nil, err
		}
	}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "simworker-pg-")
		if err != nil {
			return nil, err
		}
		s.DataDir, s.temp = dir, true
	} else {
		if s.DataDir, err = filepath.Abs(opts.DataDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
			return nil, err
		}
	}
	if err := s.chown(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		args := []string{"-D", s.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
		if opts.Fast {
			args = append(args, "--no-sync")
		}
		cmd := s.command("initdb", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb: %v: %s", err, out)
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.start(ctx)
		if err == nil {
			return s, nil
		}
		// A port picked free can be taken before the server binds it: pick again.
		if opts.Port != 0 || attempt == 2 || ctx.Err() != nil {
			s.cleanup()
			return nil, err
		}
	}
}

func (s *Postgres) start(ctx context.Context) error {
	s.Port = s.opts.Port
	if s.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		s.Port = p
	}
	args := []string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port), "-k", s.DataDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"}
	if s.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	s.cmd = s.command("postgres", args...)
	// The server dies with whoever started it, even on SIGKILL: no orphan
	// clusters from a crashed test run.
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	var out io.Writer = io.Discard
	if s.opts.Log != nil {
		out = s.opts.Log
	}
	tail := &tailBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = io.MultiWriter(out, tail), io.MultiWriter(out, tail)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()

	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited at start: %s", tail.String())
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.URL)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres did not accept connections within 60s: %v; %s", err, tail.String())
		}
	}
}

// Exited is closed when the server process has ended.
func (s *Postgres) Exited() <-chan struct{} { return s.done }

// PID is the postmaster's process id, 0 when the server is not running.
func (s *Postgres) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop shuts the server down (fast shutdown, then a kill after 15 s) and
// removes a temporary data directory.
func (s *Postgres) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.kill()
		}
	}
	s.cleanup()
	return nil
}

func (s *Postgres) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Postgres) cleanup() {
	if s.temp {
		_ = os.RemoveAll(s.DataDir)
	}
}

func (s *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = s.DataDir
	return cmd
}

// chown hands the data directory to the unprivileged user and makes sure that
// user can reach it.
func (s *Postgres) chown() error {
	if s.cred == nil {
		return nil
	}
	if err := filepath.Walk(s.DataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
	}); err != nil {
		return err
	}
	if err := os.Chmod(s.DataDir, 0o700); err != nil {
		return err
	}
	// Every parent must be searchable by that user.
	for d := filepath.Dir(s.DataDir); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("make %s searchable for the postgres user: %w", d, err)
			}
		}
	}
	return nil
}

func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and found neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")
}

// tailBuffer keeps the last few KiB of the server's output for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Database creates the named database when missing and returns its URL.
func (s *Postgres) Database(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
	}
	return strings.Replace(s.URL, "/postgres?", "/"+name+"?", 1), nil
}
