package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
)

// fixtures for the fault suite: a tree of companies, devices across it, a
// user with a grant on the root, one without grants, MNO integrations on two
// trees.
func faultFixtures() string {
	type company struct {
		ID       string  `json:"id"`
		Name     string  `json:"name"`
		ParentID *string `json:"parent_id"`
	}
	root := "co-root"
	companies := []company{{ID: root, Name: "Root"}, {ID: "co-other", Name: "Other"}}
	for i := 0; i < 10; i++ {
		child := fmt.Sprintf("co-%d", i)
		companies = append(companies, company{ID: child, Name: child, ParentID: &root})
		for j := 0; j < 3; j++ {
			p := child
			companies = append(companies, company{ID: fmt.Sprintf("co-%d-%d", i, j), Name: "leaf", ParentID: &p})
		}
	}
	var devices []map[string]string
	for i := 0; i < 50; i++ {
		devices = append(devices, map[string]string{"id": fmt.Sprintf("d-%d", i),
			"company_id": fmt.Sprintf("co-%d-%d", i%10, i%3), "name": "device"})
	}
	doc := map[string]any{
		"companies": companies,
		"users":     []map[string]string{{"id": "u-alice", "name": "Alice"}, {"id": "u-bob", "name": "Bob"}},
		"grants":    []map[string]string{{"user_id": "u-alice", "company_id": root, "permission": "sims:create"}},
		"devices":   devices,
		"mno_integrations": []map[string]string{
			{"id": "m-root", "company_id": root, "name": "Root CMP"},
			{"id": "m-other", "company_id": "co-other", "name": "Other CMP"},
		},
	}
	b, _ := json.Marshal(doc)
	return string(b)
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
	add := func(cmdID, msgID string, body any) {
		raw, _ := json.Marshal(body)
		b.msgs = append(b.msgs, message{body: raw, msgID: msgID, cmdID: cmdID})
		if !ids[cmdID] {
			ids[cmdID] = true
			b.commands++
		}
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("f-%06d", i)
		iccid := fmt.Sprintf("8988%015d", i)
		sim := map[string]any{"device_id": fmt.Sprintf("d-%d", i%50), "iccid": iccid}
		actor := "u-alice"
		switch i % 20 {
		case 13:
			sim["iccid"] = "12345"
			sim["msisdn"] = strings.Repeat("9", 21)
		case 14:
			actor = "u-bob"
		case 15:
			sim["device_id"] = "d-missing"
		case 16:
			sim["mno_integration_id"] = "m-other"
		case 17: // the ICCID of an earlier valid command (i%20 == 10)
			prev := fmt.Sprintf("f-%06d", i-7)
			sim["iccid"] = iccidOf[prev]
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
			sim["mno_integration_id"] = "m-root"
			sim["sim_metadata"] = json.RawMessage(`{"batch":12345678901234567890,"ratio":0.1}`)
		}
		iccidOf[id] = iccid
		add(id, id, map[string]any{"command_id": id, "actor_id": actor, "sim": sim})
	}
	return b
}
