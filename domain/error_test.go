package domain

import "testing"

// TestOneTableOfStatuses: every code of the contract has its status in the
// one table, events and HTTP answers alike; an unknown code is 500.
func TestOneTableOfStatuses(t *testing.T) {
	t.Parallel()
	for code, want := range map[Code]int{
		CodeInvalidArgument: 400, CodeAlreadyExists: 400, CodeUnauthorized: 401, CodeNotFound: 404, CodeInternal: 500,
		CodeRateLimited: 429, CodeIdempotencyKeyReused: 422, CodeUnavailable: 503, CodeMethodNotAllowed: 405, "made_up": 500,
	} {
		if got := code.Status(); got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
	if e := (&Error{Code: CodeInvalidArgument, Status: 413}); e.StatusOf() != 413 {
		t.Error("an Error's own status does not win")
	}
	if e := Errorf(CodeNotFound, "device_id", "device not found"); e.Message != "device_id: device not found" || e.StatusOf() != 404 ||
		len(e.Fields) != 1 || e.Fields[0].Field != "device_id" {
		t.Errorf("Errorf: %+v", e)
	}
}
