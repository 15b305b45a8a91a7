package api

import (
	"context"
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
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

// tokenCache remembers recent answers for tokenTTL, keyed by the token's
// hash (the secret itself is not kept).
type tokenCache struct {
	check Authenticator
	mu    sync.Mutex
	seen  map[[32]byte]cachedToken
}

type cachedToken struct {
	caller caller
	ok     bool
	at     time.Time
}

func (c *tokenCache) lookup(ctx context.Context, token string) (caller, bool, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	c.mu.Lock()
	hit, found := c.seen[key]
	c.mu.Unlock()
	if found && now.Sub(hit.at) < tokenTTL {
		return hit.caller, hit.ok, nil
	}
	user, id, ok, err := c.check(ctx, token)
	if err != nil {
		return caller{}, false, err
	}
	c.mu.Lock()
	if len(c.seen) > 100000 { // bound memory against a flood of made-up tokens
		clear(c.seen)
	}
	c.seen[key] = cachedToken{caller: caller{userID: user, tokenID: id}, ok: ok, at: now}
	c.mu.Unlock()
	return caller{userID: user, tokenID: id}, ok, nil
}

// authenticate is check a: a valid bearer token, or 401 with
// WWW-Authenticate: Bearer. A failure to check is 503, never a 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			writeError(w, unauthorized("a bearer token is required (Authorization: Bearer <token>)"))
			return
		}
		c, ok, err := s.tokens.lookup(r.Context(), strings.TrimSpace(token))
		if err != nil {
			s.log.Warn("token check failed", zap.Error(err))
			writeError(w, unavailable("the token could not be checked: try again", 1))
			return
		}
		if !ok {
			writeError(w, unauthorized("the token is unknown, expired or revoked"))
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
				writeError(w, errorf(http.StatusTooManyRequests, CodeRateLimited, "",
					"too many requests for this token: at most "+strconv.FormatFloat(l.perSecond, 'f', -1, 64)+" per second").
					withHeader("Retry-After", strconv.Itoa(max(1, retry))))
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
