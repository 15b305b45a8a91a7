package domain

import "fmt"

// Facts are what the database says about one command for checks 4 to 6.
type Facts struct {
	// CompanyID is the device's company, nil when the device does not exist.
	CompanyID *string
	// Allowed: the actor holds sims:create on CompanyID or one of its ancestors.
	Allowed bool
	// MNOUsable: the command names no MNO integration, or one that belongs
	// to CompanyID or one of its ancestors.
	MNOUsable bool
}

// Check returns the rejection of the first of checks 4 to 6 that f fails, in
// the contract's order: ErrDeviceNotFound (404 not_found), ErrUnauthorized
// (401 unauthorized), ErrMNONotFound (404 not_found); nil when all pass.
func (f Facts) Check() *Error {
	switch {
	case f.CompanyID == nil:
		return ErrDeviceNotFound
	case !f.Allowed:
		return ErrUnauthorized(*f.CompanyID)
	case !f.MNOUsable:
		return ErrMNONotFound
	}
	return nil
}

// Candidate is a SIM to insert: a command that passed checks 4 to 6, the
// first of those in its batch to want its ICCID.
type Candidate struct {
	Command *Command
	// CompanyID is the device's company, which the SIM inherits.
	CompanyID string
}

// Decision is the verdict on a command that had no stored outcome: Reject,
// or else Sim, the SIM stored for it.
type Decision struct {
	CommandID string
	Reject    *Error
	Sim       *Sim
	at        int // the index of the command's envelope
}

// Batch decides a batch of envelopes as if one command after the other, in
// batch order, leaving the database work to its caller. Its steps come in
// this order, each taking what the database answered to the one before:
//
//	b, err := NewBatch(envs)        // read the stored outcomes of b.CommandIDs() and
//	                                // the facts of checks 4 to 6 of b.Asks(), in one round trip
//	b.Plan(stored)                  // stored outcomes win
//	cands := b.Decide(facts)        // insert the candidates' SIMs
//	decided := b.Settle(inserted)   // build an outcome for each decision
//	outs := b.Outcomes(fresh)       // store fresh; outs answers envs
type Batch struct {
	envs  []Envelope
	first []int       // first[i]: the index of the first envelope with envs[i]'s command id
	ids   []string    // the distinct command ids, in batch order
	asks  []*Command  // the distinct commands that passed checks 1 to 3, in batch order
	askOf map[int]int // envelope index: its command's index in asks
	outs  []Outcome   // by envelope; a stored one once Plan has run, all once Outcomes has
	// decided holds the commands without a stored outcome. Until Decide runs,
	// those without Reject are the ones whose facts decide them; until Settle
	// runs, those without Reject are the candidates Decide returned.
	decided []Decision
}

// NewBatch starts the decision of envs, which must all carry a command id: an
// envelope without one (check 1 failed) has no outcome to store, and NewBatch
// returns an error.
func NewBatch(envs []Envelope) (Batch, error) {
	b := Batch{envs: envs, first: make([]int, len(envs)), ids: make([]string, 0, len(envs)), outs: make([]Outcome, len(envs)),
		asks: make([]*Command, 0, len(envs)), askOf: make(map[int]int, len(envs))}
	firstOf := make(map[string]int, len(envs))
	for i, env := range envs {
		if env.CommandID == "" {
			return Batch{}, fmt.Errorf("envelope %d without a command id reached the store", i)
		}
		if j, ok := firstOf[env.CommandID]; ok {
			b.first[i] = j
			continue
		}
		b.first[i], firstOf[env.CommandID] = i, i
		b.ids = append(b.ids, env.CommandID)
		if env.Reject == nil {
			b.askOf[i] = len(b.asks)
			b.asks = append(b.asks, &b.envs[i].Command)
		}
	}
	return b, nil
}

// CommandIDs are the batch's distinct command ids, in batch order.
func (b *Batch) CommandIDs() []string { return b.ids }

// Asks are the commands whose facts of checks 4 to 6 decide them: the
// batch's distinct commands that passed checks 1 to 3, in batch order. They
// are asked for before the stored outcomes are known (one round trip for
// both): a command found stored ignores its facts.
func (b *Batch) Asks() []*Command { return b.asks }

// Plan takes the outcomes stored for some of the batch's command ids, which
// win over anything the batch would decide. A command id repeated in the
// batch counts once.
func (b *Batch) Plan(stored []Outcome) {
	known := 0
	if len(stored) > 0 { // only redeliveries and replays: a new batch builds no map
		firstOf := make(map[string]int, len(b.ids))
		for i, j := range b.first {
			if i == j {
				firstOf[b.envs[i].CommandID] = i
			}
		}
		for _, o := range stored {
			if i, ok := firstOf[o.CommandID]; ok && b.outs[i].CommandID == "" {
				o.Replayed = true
				b.outs[i] = o
				known++
			}
		}
	}
	b.decided = make([]Decision, 0, len(b.ids)-known)
	for i, j := range b.first {
		if i != j || b.outs[i].CommandID != "" {
			continue // a repeat, or stored
		}
		env := &b.envs[i]
		b.decided = append(b.decided, Decision{CommandID: env.CommandID, Reject: env.Reject, at: i})
	}
}

// Decide takes the facts of the commands Asks returned (facts[k] is about
// the k-th) and returns the SIMs to insert. A command failing checks 4 to 6
// is rejected and claims nothing; of those passing, the first in batch order
// to want an ICCID is the candidate for it, and a later one is rejected with
// ErrICCIDTaken.
func (b *Batch) Decide(facts []Facts) []Candidate {
	cands := make([]Candidate, 0, len(facts))
	wanted := make(map[string]bool, len(facts))
	for d := range b.decided {
		if b.decided[d].Reject != nil {
			continue
		}
		f, cmd := facts[b.askOf[b.decided[d].at]], &b.envs[b.decided[d].at].Command
		switch e := f.Check(); {
		case e != nil:
			b.decided[d].Reject = e
		case wanted[cmd.Sim.ICCID]:
			b.decided[d].Reject = ErrICCIDTaken
		default:
			wanted[cmd.Sim.ICCID] = true
			cands = append(cands, Candidate{Command: cmd, CompanyID: *f.CompanyID})
		}
	}
	return cands
}

// Settle takes the SIMs the insert stored, and returns the decision on every
// command with no stored outcome, in batch order: each has a Reject or a Sim.
// A candidate whose SIM is not among inserted found its ICCID taken (by an
// earlier transaction or a concurrent one) and is rejected with
// ErrICCIDTaken.
func (b *Batch) Settle(inserted []Sim) []Decision {
	byICCID := make(map[string]*Sim, len(inserted))
	for k := range inserted {
		byICCID[inserted[k].ICCID] = &inserted[k]
	}
	for d := range b.decided {
		if b.decided[d].Reject != nil {
			continue
		}
		if sim, ok := byICCID[b.envs[b.decided[d].at].Command.Sim.ICCID]; ok {
			b.decided[d].Sim = sim
		} else {
			b.decided[d].Reject = ErrICCIDTaken
		}
	}
	return b.decided
}

// Outcomes takes the new outcomes, fresh[k] that of the k-th decision Settle
// returned, and returns the outcome of every envelope, in batch order: a
// stored outcome and an envelope repeating an earlier command id of the batch
// get that outcome with Replayed set.
func (b *Batch) Outcomes(fresh []Outcome) []Outcome {
	for k, d := range b.decided {
		b.outs[d.at] = fresh[k]
	}
	for i, j := range b.first {
		if j != i {
			b.outs[i] = b.outs[j]
			b.outs[i].Replayed = true
		}
	}
	return b.outs
}
