package domain

import "testing"

func BenchmarkParseCommand(b *testing.B) {
	body := []byte(`{"command_id":"c-0001","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944500102198304826",
	"msisdn":"4915112345678","status":"active","rate_plan":"Flex 1GB","sim_metadata":{"batch":12345678901234567890,"tags":["a","b"],"n":0.1}}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if env := ParseCommand(body); env.Reject != nil {
			b.Fatal(env.Reject)
		}
	}
}
