// Package deploy carries deployment material; Go code only embeds the demo
// fixtures that `simworker dev` loads.
package deploy

import _ "embed"

// DemoFixtures is deploy/fixtures/demo.json.
//
//go:embed fixtures/demo.json
var DemoFixtures []byte
