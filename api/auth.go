package api

import (
	"context"
	"crypto/sha256"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"simworker/domain"
)

// tokenTTL bounds how long an answer about a token is reused: a revoked
// token is refused by every API process within this (the contract says 5 s).
const tokenTTL = 2 * time.Second

// caller is the authenticated user of a request.
type caller struct {
	userID, tokenID string
}

type callerKey struct{}

func callerOf(ctx context.Context) caller { c, _ := ctx.Value(callerKey{}).(caller); return c }

// Authenticator checks a bearer token: the user and token id when valid, ok
// false when not; err for a failure to check (the database down).
type Authenticator func(ctx context.Context, token string) (userID, tokenID string, ok bool, err error)

// Bounds of what refused tokens may cost.
const (
	// refusedPerSecond is how many tokens a second one client address may
	// have refused before its requests get 429 without a query (bursts of
	// as many).
	refusedPerSecond = 100
	// validGrace: a token valid within this long keeps working from an
	// address that is refused too many others.
	validGrace = time.Minute
	// maxRefusedCached and maxAddresses bound the memory a flood of
	// made-up tokens, from any number of addresses, can take.
	maxRefusedCached = 1 << 14
	maxAddresses     = 1 << 16
)

// tokenCache remembers recent answers about tokens, keyed by the token's
// hash (the secret itself is not kept). Valid and refused tokens are kept
// apart: a flood of made-up tokens fills and clears only its own map, never
// dropping a valid token, whose entries are as many as real tokens in use.
type tokenCache struct {
	authenticate Authenticator

	mu      sync.Mutex
	valid   map[[32]byte]validToken
	refused map[[32]byte]time.Time // when it was refused
	swept   time.Time
}

type validToken struct {
	caller  caller
	checked time.Time // re-checked after tokenTTL (a revocation)
}

func newTokenCache(check Authenticator) *tokenCache {
	return &tokenCache{authenticate: check, valid: map[[32]byte]validToken{}, refused: map[[32]byte]time.Time{}}
}

// cached is the answer about a token known within tokenTTL: known false
// when it must be checked.
func (c *tokenCache) cached(key [32]byte, now time.Time) (cl caller, ok, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, isValid := c.valid[key]; isValid && now.Sub(v.checked) < tokenTTL {
		return v.caller, true, true
	}
	if at, isRefused := c.refused[key]; isRefused && now.Sub(at) < tokenTTL {
		return caller{}, false, true
	}
	return caller{}, false, false
}

// recentlyValid reports whether a token was valid within validGrace.
func (c *tokenCache) recentlyValid(key [32]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.valid[key]
	return ok && now.Sub(v.checked) < validGrace
}

// check checks a token and remembers the answer.
func (c *tokenCache) check(ctx context.Context, key [32]byte, token string, now time.Time) (caller, bool, error) {
	user, id, ok, err := c.authenticate(ctx, token)
	if err != nil {
		return caller{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		delete(c.refused, key)
		c.valid[key] = validToken{caller: caller{userID: user, tokenID: id}, checked: now}
	} else {
		delete(c.valid, key)
		if len(c.refused) >= maxRefusedCached {
			clear(c.refused)
		}
		c.refused[key] = now
	}
	if now.Sub(c.swept) > validGrace { // valid tokens unused for a while
		for k, v := range c.valid {
			if now.Sub(v.checked) > validGrace {
				delete(c.valid, k)
			}
		}
		c.swept = now
	}
	return caller{userID: user, tokenID: id}, ok, nil
}

// refusals limits the tokens refused per client address: past
// refusedPerSecond (bursts of as many) the address's requests get 429
// before any query, until its bucket refills.
type refusals struct {
	mu     sync.Mutex
	byAddr map[netip.Prefix]*rate.Limiter
}

func newRefusals() *refusals { return &refusals{byAddr: map[netip.Prefix]*rate.Limiter{}} }

// clientKey is the client's address: an IPv6 client by its /64, which one
// host commonly holds whole.
func clientKey(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// reserve takes one of the address's checks before a token is checked,
// or says how long until it may have one (then nothing is taken). The
// check is given back (release) when the token proves valid: only refused
// tokens use the address's allowance, and no two requests can both take
// its last one.
func (l *refusals) reserve(key netip.Prefix, now time.Time) (release func(), wait time.Duration) {
	lim := l.limiter(key, now)
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return func() { r.CancelAt(now) }, 0
}

// refused counts a refused token that needed no check (refused a moment
// ago): it takes from the address's allowance when there is any.
func (l *refusals) refused(key netip.Prefix, now time.Time) { l.limiter(key, now).AllowN(now, 1) }

func (l *refusals) limiter(key netip.Prefix, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byAddr[key]
	if lim == nil {
		if len(l.byAddr) >= maxAddresses {
			l.sweep(now)
		}
		lim = rate.NewLimiter(refusedPerSecond, refusedPerSecond)
		l.byAddr[key] = lim
	}
	return lim
}

// sweep forgets the addresses whose bucket is full again (they carry no
// history), and, if that is not enough, any quarter of them.
func (l *refusals) sweep(now time.Time) {
	for k, lim := range l.byAddr {
		if lim.TokensAt(now) >= refusedPerSecond {
			delete(l.byAddr, k)
		}
	}
	for k := range l.byAddr {
		if len(l.byAddr) < maxAddresses*3/4 {
			break
		}
		delete(l.byAddr, k)
	}
}

// authenticate is check a: one Authorization header (400 with field
// Authorization for two), a valid bearer token, or 401 with
// WWW-Authenticate: Bearer. An address with too many tokens refused gets
// 429 before any query, unless its token was valid within the last minute.
// A failure to check is 503, never a 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values("Authorization")
		if len(values) > 1 {
			writeError(w, s.log, errorf(0, domain.CodeInvalidArgument, "Authorization", "must be given once"))
			return
		}
		scheme, token, found := "", "", false
		if len(values) == 1 {
			scheme, token, found = strings.Cut(values[0], " ")
			token = strings.TrimSpace(token)
		}
		if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
			writeError(w, s.log, unauthorized("a bearer token is required (Authorization: Bearer <token>)"))
			return
		}
		now := time.Now()
		addr := clientKey(r.RemoteAddr)
		key := sha256.Sum256([]byte(token))
		c, ok, known := s.tokens.cached(key, now)
		if !known {
			var release func()
			if !s.tokens.recentlyValid(key, now) {
				var wait time.Duration
				if release, wait = s.refusals.reserve(addr, now); release == nil {
					writeError(w, s.log, rateLimited("too many refused tokens from this address: at most "+strconv.Itoa(refusedPerSecond)+
						" per second", int(math.Ceil(wait.Seconds()))))
					return
				}
			}
			var err error
			c, ok, err = s.tokens.check(r.Context(), key, token, now)
			if release != nil && (ok || err != nil) {
				release() // a valid token (or none checked) uses none of the allowance
			}
			if err != nil {
				s.log.Warn("token check failed", zap.Error(err))
				writeError(w, s.log, unavailable("the token could not be checked: try again", 1))
				return
			}
		} else if !ok {
			s.refusals.refused(addr, now)
		}
		if !ok {
			writeError(w, s.log, unauthorized("the token is unknown, expired or revoked"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// limiter is check b: each token's rate, bursts of twice that.
type limiter struct {
	perSecond float64 // 0: no limit
	mu        sync.Mutex
	byToken   map[string]*rate.Limiter
}

func newLimiter(perSecond float64) *limiter {
	return &limiter{perSecond: perSecond, byToken: map[string]*rate.Limiter{}}
}

func (l *limiter) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.perSecond > 0 {
			if wait := l.delay(callerOf(r.Context()).tokenID); wait > 0 {
				retry := int(math.Ceil(wait.Seconds()))
				writeError(w, nil, rateLimited("too many requests for this token: at most "+
					strconv.FormatFloat(l.perSecond, 'f', -1, 64)+" per second", retry))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// delay is 0 when the token may go on now, else how long until it may.
func (l *limiter) delay(tokenID string) time.Duration {
	l.mu.Lock()
	lim := l.byToken[tokenID]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), max(1, int(2*l.perSecond)))
		l.byToken[tokenID] = lim
	}
	l.mu.Unlock()
	if lim.Allow() {
		return 0
	}
	res := lim.Reserve()
	defer res.Cancel()
	return res.Delay()
}
