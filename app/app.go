// Package app is the application: the use cases of the worker and of the
// HTTP API and the rules they keep. It decides batches of Create-SIM
// commands (domain.Batch makes each decision; this drives the one
// transaction around them), builds every outcome event with the one
// CloudEvents source, makes and checks API tokens, and answers what the API
// reads: a caller's commands, their stored outcomes, the SIMs it may see.
//
// It reaches PostgreSQL only through the small interfaces in storage.go,
// which repo implements; cmd wires the two. The adapters (consumer, api)
// call App and never import repo.
package app

import (
	"time"

	"github.com/google/uuid"

	"simworker/domain"
)

// App is the application over its storage.
type App struct {
	store  Storage
	source string
	now    func() time.Time
}

// New returns the application on store; its events carry source as their
// CloudEvents source (domain.DefaultSource when empty).
func New(store Storage, source string) *App {
	if source == "" {
		source = domain.DefaultSource
	}
	return &App{store: store, source: source, now: time.Now}
}

// Source is the CloudEvents source of the events the application builds.
func (a *App) Source() string { return a.source }

// clock is the time a decision is made at, as PostgreSQL stores it
// (microseconds, UTC), so an event read back equals the one published.
func (a *App) clock() time.Time { return a.now().UTC().Truncate(time.Microsecond) }

// newID is a new row or event id: a UUIDv7, in creation order.
func newID() string { return uuid.Must(uuid.NewV7()).String() }
