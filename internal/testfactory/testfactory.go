// Package testfactory builds the tests' data with defaults, so a test names
// only what it is about: Create-SIM commands (bodies and parsed envelopes)
// and the reference data most tests share. In the manner of river's
// rivershared/testfactory.
package testfactory

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"simworker/domain"
)

var next atomic.Int64

// ICCID returns a valid ICCID (19 digits) that no other call returns in this
// process.
func ICCID() string { return fmt.Sprintf("89490%014d", next.Add(1)) }

// Sim is the sim object of a command. Zero fields take the defaults: device
// d-1, a fresh ICCID; nil optional fields are left out. Extra members (a
// read-only or unknown field, or one of the wrong type) are added as given
// and win over the fields above.
type Sim struct {
	DeviceID          string
	ICCID             string
	MNOIntegrationID  *string
	MSISDN            *string
	Status            *string
	CommunicationPlan *string
	RatePlan          *string
	Metadata          json.RawMessage
	Extra             map[string]any
}

// Command is a Create-SIM command. Zero fields take the defaults: command id
// c-N (fresh), actor u-alice. NoActor leaves actor_id out; Extra members of
// the envelope (an empty actor_id, say) are added as given and win.
type Command struct {
	ID      string
	Actor   string
	NoActor bool
	Sim     Sim
	Extra   map[string]any
}

// Ptr is &v, for the optional fields.
func Ptr[T any](v T) *T { return &v }

// WithDefaults fills the zero fields, so the command id and ICCID are fixed
// before the body is made.
func (c Command) WithDefaults() Command {
	if c.ID == "" {
		c.ID = fmt.Sprintf("c-%d", next.Add(1))
	}
	if c.Actor == "" && !c.NoActor {
		c.Actor = "u-alice"
	}
	if c.Sim.DeviceID == "" {
		c.Sim.DeviceID = "d-1"
	}
	if c.Sim.ICCID == "" {
		c.Sim.ICCID = ICCID()
	}
	return c
}

// Body is the command's JSON body.
func (c Command) Body() []byte {
	c = c.WithDefaults()
	sim := map[string]any{"device_id": c.Sim.DeviceID, "iccid": c.Sim.ICCID}
	for k, v := range map[string]*string{"mno_integration_id": c.Sim.MNOIntegrationID, "msisdn": c.Sim.MSISDN,
		"status": c.Sim.Status, "communication_plan": c.Sim.CommunicationPlan, "rate_plan": c.Sim.RatePlan} {
		if v != nil {
			sim[k] = *v
		}
	}
	if c.Sim.Metadata != nil {
		sim["sim_metadata"] = c.Sim.Metadata
	}
	for k, v := range c.Sim.Extra {
		sim[k] = v
	}
	body := map[string]any{"command_id": c.ID, "sim": sim}
	if !c.NoActor {
		body["actor_id"] = c.Actor
	}
	for k, v := range c.Extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // strings, maps and raw JSON only
	}
	return b
}

// Envelope is the command's body, decoded as the worker decodes it.
func (c Command) Envelope() domain.Envelope { return domain.ParseCommand(c.Body()) }

// World is the reference data most tests share: a three-level tree
// co-reseller > co-acme > co-acme-eu and a sibling tree co-globex; u-alice may
// create SIMs on the whole reseller tree, u-gina on globex, u-eve on
// co-acme-eu only (and read it), u-bob may only read co-acme; a device and an
// MNO integration at several levels.
func World() *domain.Fixtures {
	f := &domain.Fixtures{}
	return f.Company("co-reseller", "").Company("co-acme", "co-reseller").Company("co-acme-eu", "co-acme").
		Company("co-globex", "").
		User("u-alice").User("u-bob").User("u-gina").User("u-eve").
		Grant("u-alice", "co-reseller", domain.PermissionCreateSIM).
		Grant("u-gina", "co-globex", domain.PermissionCreateSIM).
		Grant("u-eve", "co-acme-eu", "sims:read").
		Grant("u-eve", "co-acme-eu", domain.PermissionCreateSIM).
		Grant("u-bob", "co-acme", "sims:read").
		Device("d-1", "co-acme").Device("d-eu", "co-acme-eu").Device("d-globex", "co-globex").
		MNOIntegration("m-reseller", "co-reseller").MNOIntegration("m-acme", "co-acme").
		MNOIntegration("m-acme-eu", "co-acme-eu").MNOIntegration("m-globex", "co-globex")
}

// StoredMetadata is a sim_metadata object that PostgreSQL stores as exactly
// size bytes (at least 120), from a body of a few kilobytes: 1e99 is 4
// bytes sent and 100 stored.
func StoredMetadata(size int) json.RawMessage {
	k := (size - 16 - 1) / 102 // {"a": [n, n, ...], "s": "pad"} is 16 + 102k + len(pad) bytes stored
	pad := size - 16 - 102*k
	return json.RawMessage(`{"a":[` + strings.TrimSuffix(strings.Repeat("1e99,", k), ",") + `],"s":"` + strings.Repeat("x", pad) + `"}`)
}
