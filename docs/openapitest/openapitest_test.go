package openapitest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"simworker/docs/openapitest"
)

const (
	simID = "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b"
	sim   = `{"id": "` + simID + `", "company_id": "co-acme", "device_id": "d-1",
		"mno_integration_id": null, "iccid": "8944500102198304826", "msisdn": null, "status": "inactive",
		"communication_plan": null, "rate_plan": null, "sim_metadata": {}, "ctd_data_usage": 0, "ctd_sms_usage": 0,
		"included_usage": 0, "overage_limit_reached": false, "sim_barred": false, "last_sync_at": null,
		"created_at": "2026-11-25T10:46:03.847458Z", "created_by": "u-alice", "updated_at": "2026-11-25T10:46:03.847458Z",
		"updated_by": "u-alice"}`
	validBody = `{"device_id": "d-1", "iccid": "8944500102198304826"}`
)

// answer is what the test server says, chosen by the request's Test-Answer
// header (which the document ignores, as it ignores every header it does not
// name).
type answer struct {
	status  int
	headers map[string]string
	body    string
}

var answers = map[string]answer{
	"created": {201, map[string]string{"Location": "/v1/sims/" + simID, "Sim-Command-Id": "c-1"}, sim},
	"created, replayed": {201, map[string]string{"Location": "/v1/sims/" + simID, "Sim-Command-Id": "c-1",
		"Idempotent-Replayed": "true"}, sim},
	"created, with a charset": {201, map[string]string{"Location": "/v1/sims/" + simID, "Sim-Command-Id": "c-1",
		"Content-Type": "application/json; charset=utf-8"}, sim},
	"created without Location":         {201, map[string]string{"Sim-Command-Id": "c-1"}, sim},
	"created at another Location":      {201, map[string]string{"Location": "/v1/sims/other", "Sim-Command-Id": "c-1"}, sim},
	"created without its iccid":        {201, map[string]string{"Location": "/v1/sims/" + simID, "Sim-Command-Id": "c-1"}, strings.Replace(sim, `"iccid": "8944500102198304826", `, "", 1)},
	"created as text":                  {201, map[string]string{"Location": "/v1/sims/" + simID, "Sim-Command-Id": "c-1", "Content-Type": "text/plain"}, sim},
	"pending":                          {202, map[string]string{"Location": "/v1/commands/c-1", "Sim-Command-Id": "c-1"}, `{"command_id": "c-1", "state": "pending"}`},
	"pending elsewhere":                {202, map[string]string{"Location": "/v1/commands/c-2", "Sim-Command-Id": "c-1"}, `{"command_id": "c-1", "state": "pending"}`},
	"rejected":                         {400, map[string]string{"Sim-Command-Id": "c-1"}, errorBody("c-1", 400, "invalid_argument")},
	"rejected without its command":     {400, nil, errorBody("c-1", 400, "invalid_argument")},
	"refused before any command":       {400, nil, errorBody("", 400, "invalid_argument")},
	"a status the document lacks":      {418, nil, errorBody("", 418, "internal")},
	"rate limited":                     {429, map[string]string{"Retry-After": "1"}, errorBody("", 429, "rate_limited")},
	"rate limited without Retry-After": {429, nil, errorBody("", 429, "rate_limited")},
	"a 400 with the code of a 429":     {400, nil, errorBody("", 400, "rate_limited")},
	"a sim":                            {200, nil, sim},
	"a sim without an id":              {200, nil, strings.Replace(sim, `"id": "`+simID+`", `, "", 1)},
	"a sim whose id is no UUID":        {200, nil, strings.Replace(sim, simID, "sim-1", 1)},
	"token refused":                    {401, map[string]string{"WWW-Authenticate": "Bearer"}, errorBody("", 401, "unauthorized")},
	"token refused without challenge":  {401, nil, errorBody("", 401, "unauthorized")},
	"not found":                        {404, nil, errorBody("", 404, "not_found")},
	"not found in plain text":          {404, map[string]string{"Content-Type": "text/plain"}, "404 page not found"},
	"method not allowed":               {405, map[string]string{"Allow": "POST"}, errorBody("", 405, "method_not_allowed")},
	"method not allowed, Allow wrong":  {405, map[string]string{"Allow": "GET"}, errorBody("", 405, "method_not_allowed")},
}

func errorBody(commandID string, status int, code string) string {
	return fmt.Sprintf(`{"command_id": %q, "status": %d, "code": %q, "message": "m", "errors": []}`, commandID, status, code)
}

func server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.Header.Get("Test-Answer")]
		if !ok {
			http.Error(w, "unknown Test-Answer", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// exchange sends one request to srv and returns it and the answer, bodies read.
func exchange(t *testing.T, srv *httptest.Server, method, path, answer, body string, header http.Header) (*http.Request, []byte, *http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Test-Answer", answer)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, []byte(body), resp, respBody
}

// recorder is a testing.TB that keeps what Check reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestValidator(t *testing.T) {
	t.Parallel()
	v := openapitest.New(t)
	srv := server(t)
	auth := http.Header{"Authorization": {"Bearer any-token"}, "Content-Type": {"application/json"}}
	with := func(k, val string) http.Header {
		h := auth.Clone()
		h.Set(k, val)
		return h
	}
	noAuth := http.Header{"Content-Type": {"application/json"}}

	for _, c := range []struct {
		method, path, answer, body string
		header                     http.Header
		// want is part of what Validate says ("" when the exchange conforms);
		// wantResponse is part of what ValidateResponse says.
		want, wantResponse string
	}{
		{"POST", "/v1/sims", "created", validBody, auth, "", ""},
		{"POST", "/v1/sims", "created, replayed", validBody, with("Idempotency-Key", "k 1"), "", ""},
		{"POST", "/v1/sims", "created", validBody, with("Content-Type", "application/json; charset=utf-8"), "", ""},
		{"POST", "/v1/sims", "created, with a charset", validBody, auth, "", ""},
		{"POST", "/v1/sims", "created without Location", validBody, auth, `"Location"`, `"Location"`},
		{"POST", "/v1/sims", "created at another Location", validBody, auth, "the body's id", "the body's id"},
		{"POST", "/v1/sims", "created without its iccid", validBody, auth, `"iccid"`, `"iccid"`},
		{"POST", "/v1/sims", "created as text", validBody, auth, "text/plain", "text/plain"},
		{"POST", "/v1/sims", "pending", validBody, auth, "", ""},
		{"POST", "/v1/sims", "pending elsewhere", validBody, auth, "the body's command_id", "the body's command_id"},
		{"POST", "/v1/sims", "rejected", `{"device_id": "d-9", "iccid": "8944500102198304826"}`, auth, "", ""},
		{"POST", "/v1/sims", "rejected without its command", validBody, auth, "Sim-Command-Id", "Sim-Command-Id"},
		{"POST", "/v1/sims", "a status the document lacks", validBody, auth, "status is not supported", "status is not supported"},
		{"POST", "/v1/sims", "rate limited", validBody, auth, "", ""},
		{"POST", "/v1/sims", "rate limited without Retry-After", validBody, auth, "Retry-After", "Retry-After"},
		{"POST", "/v1/sims", "a 400 with the code of a 429", validBody, auth, "code", "code"},
		// Requests that break the document: Check says so, CheckResponse judges the answer.
		{"POST", "/v1/sims", "refused before any command", `{"device_id": "d-1", "iccid": "12"}`, auth, "iccid", ""},
		{"POST", "/v1/sims", "refused before any command", validBody, with("Idempotency-Key", "clé"), "Idempotency-Key", ""},
		{"POST", "/v1/sims", "token refused", validBody, noAuth, "authorization failed", ""},
		{"POST", "/v1/sims", "token refused without challenge", validBody, noAuth, "authorization failed", ""},
		{"GET", "/v1/sims/" + simID, "a sim", "", auth, "", ""},
		{"HEAD", "/v1/sims/" + simID, "a sim", "", auth, "", ""},
		{"GET", "/v1/sims/" + simID, "a sim without an id", "", auth, `"id"`, `"id"`},
		{"GET", "/v1/sims/" + simID, "a sim whose id is no UUID", "", auth, "uuid", "uuid"},
		{"GET", "/v1/sims/" + simID, "token refused", "", noAuth, "authorization failed", ""},
		{"GET", "/v1/sims/" + simID, "token refused without challenge", "", noAuth, "authorization failed", "WWW-Authenticate"},
		{"GET", "/v1/commands/c-1", "not found", "", auth, "", ""},
		{"GET", "/v1/nowhere", "not found", "", auth, "no path of the document", ""},
		{"GET", "/v1/nowhere", "not found in plain text", "", auth, "no path of the document", "text/plain"},
		{"DELETE", "/v1/sims", "method not allowed", "", auth, "does not take DELETE", ""},
		{"DELETE", "/v1/sims", "method not allowed, Allow wrong", "", auth, "does not take DELETE", "it lacks POST"},
		{"DELETE", "/v1/sims", "not found", "", auth, "does not take DELETE", "status is not supported"},
	} {
		t.Run(c.method+" "+c.path+": "+c.answer, func(t *testing.T) {
			t.Parallel() // one Validator for parallel tests, as the API's tests will use it
			req, reqBody, resp, respBody := exchange(t, srv, c.method, c.path, c.answer, c.body, c.header)
			for _, check := range []struct {
				what string
				err  error
				want string
			}{
				{"Validate", v.Validate(req, reqBody, resp, respBody), c.want},
				{"ValidateResponse", v.ValidateResponse(req, resp, respBody), c.wantResponse},
			} {
				switch {
				case check.want == "" && check.err != nil:
					t.Errorf("%s: %v", check.what, check.err)
				case check.want != "" && check.err == nil:
					t.Errorf("%s found nothing, want %q", check.what, check.want)
				case check.want != "" && !strings.Contains(check.err.Error(), check.want):
					t.Errorf("%s says %v\nwant it to mention %q", check.what, check.err, check.want)
				}
			}
		})
	}
}

// Check and CheckResponse report through the test: nothing for an exchange
// that conforms, an error for one that does not.
func TestCheckReportsThroughTheTest(t *testing.T) {
	t.Parallel()
	v := openapitest.New(t)
	srv := server(t)
	auth := http.Header{"Authorization": {"Bearer any-token"}, "Content-Type": {"application/json"}}

	good := &recorder{TB: t}
	req, reqBody, resp, respBody := exchange(t, srv, "POST", "/v1/sims", "created", validBody, auth)
	v.Check(good, req, reqBody, resp, respBody)
	v.CheckResponse(good, req, resp, respBody)
	if len(good.errors) != 0 {
		t.Errorf("a conforming exchange was reported: %q", good.errors)
	}

	bad := &recorder{TB: t}
	req, reqBody, resp, respBody = exchange(t, srv, "GET", "/v1/sims/"+simID, "a sim without an id", "", auth)
	v.Check(bad, req, reqBody, resp, respBody)
	v.CheckResponse(bad, req, resp, respBody)
	if len(bad.errors) != 2 || !strings.Contains(bad.errors[0], "GET /v1/sims/"+simID+" -> 200") {
		t.Errorf("a SIM without its id: reported %q, want two reports naming the exchange", bad.errors)
	}
}

func TestNewFromDataRefusesABrokenDocument(t *testing.T) {
	t.Parallel()
	if _, err := openapitest.NewFromData([]byte("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n")); err == nil ||
		!strings.Contains(err.Error(), "NotFound") {
		t.Errorf("a document without components/responses/NotFound: %v", err)
	}
	if _, err := openapitest.NewFromData([]byte("openapi: 3.0.3\ninfo: {title: x}\npaths: {}\n")); err == nil {
		t.Error("a document without info.version was accepted")
	}
}
