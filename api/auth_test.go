package api

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"simworker/app"
	"simworker/repo"
	"simworker/repo/repotest"
)

// TestValidTokenSurvivesAFlood: a flood of made-up tokens, more than the
// cache keeps of them, never drops a valid token from it.
func TestValidTokenSurvivesAFlood(t *testing.T) {
	t.Parallel()
	pool, _ := repotest.NewDB(t)
	repotest.LoadDemo(t, pool)
	a := app.New(repo.New(pool), "")
	tok, _, err := a.CreateToken(context.Background(), "u-alice", "t", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int64
	c := newTokenCache(func(ctx context.Context, token string) (string, string, bool, error) {
		checks.Add(1)
		return a.Authenticate(ctx, token)
	})
	now := time.Now()
	key := sha256.Sum256([]byte(tok))
	if _, ok, err := c.check(context.Background(), key, tok, now); !ok || err != nil {
		t.Fatalf("the token: ok %v, %v", ok, err)
	}
	for i := range 3 * maxRefusedCached {
		bad := fmt.Sprintf("sim_made-up-%d", i) // refused without a query, cached all the same
		if _, ok, _ := c.check(context.Background(), sha256.Sum256([]byte(bad)), bad, now); ok {
			t.Fatal("a made-up token accepted")
		}
	}
	if _, ok, known := c.cached(key, now); !ok || !known {
		t.Fatal("the valid token was dropped from the cache by the flood")
	}
	if n := len(c.refused); n > maxRefusedCached {
		t.Fatalf("%d refused tokens kept, at most %d", n, maxRefusedCached)
	}
}

// TestRefusalsAreBounded: any number of client addresses keeps at most
// maxAddresses limiters.
func TestRefusalsAreBounded(t *testing.T) {
	t.Parallel()
	l := newRefusals()
	now := time.Now()
	for i := range maxAddresses + 5000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.refused(netip.PrefixFrom(a, 32), now)
	}
	if n := len(l.byAddr); n > maxAddresses {
		t.Fatalf("%d addresses kept, at most %d", n, maxAddresses)
	}
	// An IPv6 host is one client across its /64.
	if clientKey("[2001:db8::1]:1") != clientKey("[2001:db8::ffff]:2") || clientKey("10.0.0.1:1") == clientKey("10.0.0.2:1") {
		t.Fatal("client keys")
	}
}

// TestRefusalsBlockAnAddress: past 100 refused tokens in a second an
// address may have no token checked (a new one included) until its bucket
// refills; a token that proves valid gives its check back.
func TestRefusalsBlockAnAddress(t *testing.T) {
	t.Parallel()
	l := newRefusals()
	addr := clientKey("192.0.2.1:1234")
	now := time.Now()
	for i := range refusedPerSecond {
		if release, _ := l.reserve(addr, now); release == nil {
			t.Fatalf("check %d refused: the first %d may be checked", i, refusedPerSecond)
		}
	}
	release, wait := l.reserve(addr, now)
	if release != nil || wait <= 0 {
		t.Fatalf("a check past %d in a second: release %v, wait %v", refusedPerSecond, release != nil, wait)
	}
	if release, _ := l.reserve(clientKey("192.0.2.2:1"), now); release == nil {
		t.Fatal("another address was refused")
	}
	later := now.Add(time.Second / refusedPerSecond)
	release, _ = l.reserve(addr, later)
	if release == nil {
		t.Fatal("no check after the bucket refilled one")
	}
	release() // the token was valid: its check comes back
	if release, _ := l.reserve(addr, later); release == nil {
		t.Fatal("a valid token's check was not given back")
	}
}
