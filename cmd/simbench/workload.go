package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"simworker/domain"
)

// command is a generated command.
type command struct {
	id   string
	body []byte
}

// generate makes n commands: 90% valid, 10% spread over every rejection
// code, some ICCIDs wanted twice. depth 8 puts every device at the bottom of
// an eight-level company tree.
func generate(n, depth int) []command {
	out := make([]command, n)
	prefix := "b"
	if depth > 0 {
		prefix = fmt.Sprintf("deep%d", depth)
	}
	for i := range out {
		id := fmt.Sprintf("%s-%08d", prefix, i)
		device := fmt.Sprintf("d-%d", i%20000)
		actor := fmt.Sprintf("u-%d", (i%20000)/10) // user u-k holds the grant of device d-(10k..10k+9)'s reseller
		if depth > 0 {
			device, actor = fmt.Sprintf("deep-d-%d", i%1000), "u-deep"
		}
		sim := map[string]any{"device_id": device, "iccid": fmt.Sprintf("89%02d%015d", depth, i),
			"msisdn": fmt.Sprintf("49151%08d", i), "status": "active", "rate_plan": "Flex 1GB", "communication_plan": "IoT EU",
			"sim_metadata": json.RawMessage(`{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}`)}
		switch i % 100 {
		case 90, 91:
			sim["iccid"] = "123" // 400 invalid_argument
		case 92:
			actor = "" // 401 no actor
		case 93:
			sim["device_id"] = "d-missing" // 404 device
		case 94, 95:
			actor = "u-nobody" // 401 no permission
		case 96:
			sim["mno_integration_id"] = "m-missing" // 404 MNO
		case 97, 98, 99:
			if i >= 100 { // 400 already_exists: the ICCID of a valid command just before
				sim["iccid"] = fmt.Sprintf("89%02d%015d", depth, i-10)
			}
		}
		body, _ := json.Marshal(map[string]any{"command_id": id, "actor_id": actor, "sim": sim})
		out[i] = command{id: id, body: body}
	}
	return out
}

// fixtures: 1,000 companies in a three-level tree (10 resellers, 90
// customers, 900 sites), 20,000 devices on the sites, 2,000 users with a
// grant each, MNO integrations; and an eight-level chain for the depth run.
func fixtures() *domain.Fixtures {
	f := &domain.Fixtures{}
	site := func(k int) string { return fmt.Sprintf("co-site-%d", k) }
	for r := 0; r < 10; r++ {
		reseller := fmt.Sprintf("co-reseller-%d", r)
		f.Company(reseller, "")
		for c := 0; c < 9; c++ {
			customer := fmt.Sprintf("co-customer-%d", r*9+c)
			f.Company(customer, reseller)
			for s := 0; s < 10; s++ {
				f.Company(site((r*9+c)*10+s), customer)
			}
		}
	}
	for d := 0; d < 20000; d++ {
		f.Device(fmt.Sprintf("d-%d", d), site(d/10%900))
	}
	// User u-k (k < 2000) holds the grant on the customer above device
	// d-(10k)'s site: generate() pairs them.
	for u := 0; u < 2000; u++ {
		f.User(fmt.Sprintf("u-%d", u)).Grant(fmt.Sprintf("u-%d", u), fmt.Sprintf("co-customer-%d", (u*10/10%900)/10), domain.PermissionCreateSIM)
	}
	f.User("u-nobody").User("u-deep")
	// The depth run: deep-1 > deep-2 > ... > deep-8, devices on deep-8, the
	// grant on deep-1, and many grants of other users on the way.
	for lvl := 1; lvl <= 8; lvl++ {
		parent := ""
		if lvl > 1 {
			parent = fmt.Sprintf("co-deep-%d", lvl-1)
		}
		f.Company(fmt.Sprintf("co-deep-%d", lvl), parent)
	}
	for d := 0; d < 1000; d++ {
		f.Device(fmt.Sprintf("deep-d-%d", d), "co-deep-8")
	}
	f.Grant("u-deep", "co-deep-1", domain.PermissionCreateSIM)
	for u := 0; u < 2000; u++ {
		for lvl := 2; lvl <= 8; lvl += 3 {
			f.Grant(fmt.Sprintf("u-%d", u), fmt.Sprintf("co-deep-%d", lvl), "sims:read")
		}
	}
	return f.MNOIntegration("m-1", "co-reseller-0")
}

func generateRange(lo, hi int) []command {
	all := generate(hi, 0)
	for i := lo; i < hi; i++ {
		all[i].id = "q-" + all[i].id
		all[i].body = []byte(strings.Replace(string(all[i].body), `"command_id":"b-`, `"command_id":"q-b-`, 1))
	}
	return all[lo:hi]
}
