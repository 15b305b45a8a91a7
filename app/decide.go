package app

import (
	"context"
	"errors"
	"time"

	"simworker/domain"
)

// Handle decides a batch of commands in one transaction, in the order given
// (stream order: an ICCID clash inside the batch goes to the earlier
// command), and stores each outcome with its command id. Every envelope must
// carry a command id. A command whose outcome is already stored gets that
// outcome back unchanged (Replayed set) and creates nothing; an envelope
// with Reject set (checks 1 to 3 failed, or domain.InternalEnvelope) is
// stored as that rejection otherwise. The outcomes are in the order of envs.
//
// On error nothing is stored. An error wrapping domain.ErrUnavailable is an
// outage to retry; any other error is unexpected (a bug or bad data the
// checks did not foresee).
func (a *App) Handle(ctx context.Context, envs []domain.Envelope) ([]domain.Outcome, error) {
	careful := false
	for attempt := 1; ; attempt++ {
		outs, err := a.decide(ctx, envs, careful)
		switch {
		case errors.Is(err, ErrICCIDTaken) && !careful:
			careful = true // decided again, the SIMs inserted around the taken ICCID
			continue
		case errors.Is(err, ErrDecidedConcurrently) && attempt < 5:
			continue // the retry reads the other worker's outcomes
		case err != nil:
			return nil, err
		}
		return outs, nil
	}
}

// decide decides the batch once. domain.Batch makes every decision, as if
// one command after the other in the order given; this fetches the facts
// and writes the rows, in three round trips whatever the batch's size
// (BeginBatch, then Commit).
//
// The SIMs are made here, so nothing is read back (their metadata is
// already the text jsonb prints, domain.SimInput), and inserted
// optimistically, every outcome built beforehand: an ICCID taken (stored
// before, or by a transaction still running, which the unique index waits
// for) fails the commit with ErrICCIDTaken, and the batch is decided again,
// careful: its SIMs inserted first, the taken ones left out (the rejection
// ErrICCIDTaken's check 7 gives). A plain insert costs PostgreSQL about half
// as much as one that skips conflicts, and taken ICCIDs are rare.
func (a *App) decide(ctx context.Context, envs []domain.Envelope, careful bool) (outs []domain.Outcome, err error) {
	b, err := domain.NewBatch(envs)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	tx, stored, facts, err := a.store.BeginBatch(ctx, b.CommandIDs(), b.Asks())
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	b.Plan(stored)
	sims := makeSims(b.Decide(facts), now)
	if careful {
		if sims, err = tx.InsertSimsSkippingTaken(ctx, sims); err != nil {
			return nil, err
		}
	}
	fresh, err := a.outcomes(b.Settle(sims), envs, now)
	if err != nil {
		return nil, err
	}
	if careful {
		sims = nil // in already
	}
	if err := tx.Commit(ctx, sims, fresh); err != nil {
		return nil, err
	}
	return b.Outcomes(fresh), nil
}

// makeSims makes the candidates' SIMs as the table's defaults would: the
// stored row, byte for byte in the event (TestCreatedEventIsTheStoredRow).
func makeSims(cands []domain.Candidate, now time.Time) []domain.Sim {
	sims := make([]domain.Sim, len(cands))
	for k, c := range cands {
		sims[k] = c.Command.Sim.Sim(newID(), c.CompanyID, c.Command.ActorID, now)
	}
	return sims
}

// outcomes builds the outcome of each decision, its event carrying the
// command's traceparent.
func (a *App) outcomes(decided []domain.Decision, envs []domain.Envelope, now time.Time) ([]domain.Outcome, error) {
	var traces map[string]string // command id: traceparent, for the events
	for _, e := range envs {
		if e.TraceParent != "" {
			if traces == nil {
				traces = map[string]string{}
			}
			traces[e.CommandID] = e.TraceParent
		}
	}
	fresh := make([]domain.Outcome, len(decided))
	for k, d := range decided {
		if d.Reject != nil {
			fresh[k] = domain.NewRejected(a.source, newID(), d.CommandID, now, d.Reject)
		} else {
			var err error
			if fresh[k], err = domain.NewCreated(a.source, newID(), d.CommandID, *d.Sim); err != nil {
				return nil, err
			}
		}
		fresh[k] = fresh[k].WithTraceParent(traces[d.CommandID])
	}
	return fresh, nil
}

// Unidentified is the rejection of a command body without a command id,
// which nothing stores: eventID and at come from the message's place in its
// stream, so a redelivery publishes the very same event.
func (a *App) Unidentified(eventID string, at time.Time, reject *domain.Error) domain.Outcome {
	return domain.NewRejected(a.source, eventID, "", at, reject)
}

// ReplaceWithInternal replaces the stored outcome o, whose event could not
// be published for a reason of its own (larger than the NATS server's
// maximum payload, say), by a 500 internal rejection, in one transaction:
// the SIM o created goes too, since it was never announced and must not
// hold its ICCID. It returns the outcome stored now: that rejection, or, when
// o is no longer the stored outcome (another worker replaced it first),
// the one that is.
func (a *App) ReplaceWithInternal(ctx context.Context, o domain.Outcome, traceParent string) (domain.Outcome, error) {
	internal := domain.NewInternal(a.source, newID(), o.CommandID, a.clock()).WithTraceParent(traceParent)
	return a.store.ReplaceOutcome(ctx, o, internal)
}

// BeginAttempt marks an attempt at a suspect command (AttemptStore).
func (a *App) BeginAttempt(ctx context.Context, commandID, attempt string) (int, error) {
	return a.store.BeginAttempt(ctx, commandID, attempt)
}

// EndAttempt ends an attempt at a suspect command (AttemptStore).
func (a *App) EndAttempt(ctx context.Context, commandID, attempt string, decided bool) error {
	return a.store.EndAttempt(ctx, commandID, attempt, decided)
}
