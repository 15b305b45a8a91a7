package e2e

import (
	"encoding/json"
	"fmt"
	"strings"

	"simworker/domain"
	"simworker/internal/testfactory"
)

// faultFixtures for the fault suite: a tree of companies, devices across it, a
// user with a grant on the root, one without grants, MNO integrations on two
// trees.
func faultFixtures() *domain.Fixtures {
	f := (&domain.Fixtures{}).Company("co-root", "").Company("co-other", "")
	for i := 0; i < 10; i++ {
		child := fmt.Sprintf("co-%d", i)
		f.Company(child, "co-root")
		for j := 0; j < 3; j++ {
			f.Company(fmt.Sprintf("co-%d-%d", i, j), child)
		}
	}
	for i := 0; i < 50; i++ {
		f.Device(fmt.Sprintf("d-%d", i), fmt.Sprintf("co-%d-%d", i%10, i%3))
	}
	return f.User("u-alice").User("u-bob").Grant("u-alice", "co-root", domain.PermissionCreateSIM).
		MNOIntegration("m-root", "co-root").MNOIntegration("m-other", "co-other")
}

// message is one command message of a batch.
type message struct {
	body  []byte
	msgID string
	cmdID string // empty for a body without a command id
}

// batch is a mixed set of commands and what the comparison needs to know.
type batch struct {
	msgs []message
	// clash maps an ICCID to the command ids that all try to create it.
	clash map[string][]string
	// garbage is how many messages have no command id.
	garbage int
	// commands is how many distinct command ids there are.
	commands int
}

// mixedBatch makes n messages: mostly valid, and every kind of rejection,
// ICCID clashes, the same command twice (outside JetStream's de-duplication,
// under a different Nats-Msg-Id), and bodies without a command id.
func mixedBatch(n int) *batch {
	b := &batch{clash: map[string][]string{}}
	iccidOf := map[string]string{}
	ids := map[string]bool{}
	add := func(c testfactory.Command) {
		b.msgs = append(b.msgs, message{body: c.Body(), msgID: c.ID, cmdID: c.ID})
		if !ids[c.ID] {
			ids[c.ID] = true
			b.commands++
		}
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("f-%06d", i)
		iccid := fmt.Sprintf("8988%015d", i)
		c := testfactory.Command{ID: id, Sim: testfactory.Sim{DeviceID: fmt.Sprintf("d-%d", i%50), ICCID: iccid}}
		switch i % 20 {
		case 13:
			c.Sim.ICCID, c.Sim.MSISDN = "12345", testfactory.Ptr(strings.Repeat("9", 21))
		case 14:
			c.Actor = "u-bob"
		case 15:
			c.Sim.DeviceID = "d-missing"
		case 16:
			c.Sim.MNOIntegrationID = testfactory.Ptr("m-other")
		case 17: // the ICCID of an earlier valid command (i%20 == 10)
			prev := fmt.Sprintf("f-%06d", i-7)
			c.Sim.ICCID = iccidOf[prev]
			b.clash[iccidOf[prev]] = []string{prev, id}
		case 18: // the previous command again, outside the duplicate window
			prev := b.msgs[len(b.msgs)-1]
			b.msgs = append(b.msgs, message{body: prev.body, msgID: prev.msgID + "-again", cmdID: prev.cmdID})
			continue
		case 19:
			if i%40 == 19 {
				b.msgs = append(b.msgs, message{body: []byte(fmt.Sprintf("not json %d", i)), msgID: "garbage-" + id})
				b.garbage++
				continue
			}
			c.Sim.MNOIntegrationID = testfactory.Ptr("m-root")
			c.Sim.Metadata = json.RawMessage(`{"batch":12345678901234567890,"ratio":0.1}`)
		}
		iccidOf[id] = iccid
		add(c)
	}
	return b
}
