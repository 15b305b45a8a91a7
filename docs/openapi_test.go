package docs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"simworker/docs"
	"simworker/domain"
)

func loadDoc(t *testing.T, data []byte) (*openapi3.T, error) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
}

func mustLoadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadDoc(t, docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc := mustLoadDoc(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi is %q, want 3.0.3 (the version the Go validators support best)", doc.OpenAPI)
	}
}

// The validation above is only worth something if it fails on a broken
// document: each copy breaks it in one way.
func TestOpenAPIValidationRejectsBrokenCopies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, old, new string }{
		{"a $ref to a missing schema", "$ref: '#/components/schemas/Pending'", "$ref: '#/components/schemas/NoSuchSchema'"},
		{"a $ref to a missing response", "$ref: '#/components/responses/RateLimited'", "$ref: '#/components/responses/NoSuchResponse'"},
		{"a wrong type", "type: boolean\n          description: Whether the SIM is barred", "type: bool\n          description: Whether the SIM is barred"},
		{"an example that breaks its schema", "        ctd_data_usage: 0\n", "        ctd_data_usage: none\n"},
		{"a pattern that does not compile", "pattern: '^[0-9]{18,22}$'", "pattern: '^([0-9]{18,22}$'"},
		{"a path parameter the path lacks", "/v1/sims/{id}:", "/v1/sims/{sim_id}:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := string(docs.OpenAPI)
			if !strings.Contains(src, c.old) {
				t.Fatalf("the document no longer contains %q: update this case", c.old)
			}
			if _, err := loadDoc(t, []byte(strings.ReplaceAll(src, c.old, c.new))); err == nil {
				t.Fatal("the broken copy loads and validates")
			} else {
				t.Logf("refused as it should be: %v", err)
			}
		})
	}
}

// The operations of CONTRACT.md section 5, with every answer each may give
// and the headers those answers carry (true: required).
func TestOpenAPIHasEveryCallOfTheContract(t *testing.T) {
	t.Parallel()
	doc := mustLoadDoc(t)
	type answers map[string]map[string]bool // status -> header -> required
	decidedError := map[string]bool{"Sim-Command-Id": false, "Idempotent-Replayed": false}
	for _, c := range []struct {
		method, path, operationID string
		answers                   answers
	}{
		{"POST", "/v1/sims", "createSim", answers{
			"201": {"Location": true, "Sim-Command-Id": true, "Idempotent-Replayed": false},
			"202": {"Location": true, "Sim-Command-Id": true},
			"400": decidedError,
			"401": {"WWW-Authenticate": false, "Sim-Command-Id": false, "Idempotent-Replayed": false},
			"404": {"Sim-Command-Id": true, "Idempotent-Replayed": false},
			"413": {}, "415": {}, "422": {},
			"429": {"Retry-After": true},
			"500": decidedError,
			"503": {"Retry-After": true},
		}},
		{"GET", "/v1/commands/{command_id}", "getCommand", answers{
			"200": {}, "400": {}, "401": {"WWW-Authenticate": true}, "404": {}, "429": {"Retry-After": true},
			"500": {}, "503": {"Retry-After": true},
		}},
		{"GET", "/v1/sims/{id}", "getSim", answers{
			"200": {}, "400": {}, "401": {"WWW-Authenticate": true}, "404": {}, "429": {"Retry-After": true},
			"500": {}, "503": {"Retry-After": true},
		}},
	} {
		op := doc.Paths.Find(c.path).GetOperation(c.method)
		if op == nil {
			t.Errorf("%s %s is missing", c.method, c.path)
			continue
		}
		if op.OperationID != c.operationID {
			t.Errorf("%s %s: operationId %q, want %q", c.method, c.path, op.OperationID, c.operationID)
		}
		got := slices.Sorted(maps.Keys(op.Responses.Map()))
		if want := slices.Sorted(maps.Keys(c.answers)); !slices.Equal(got, want) {
			t.Errorf("%s %s answers %v, want %v", c.method, c.path, got, want)
		}
		for status, headers := range c.answers {
			r := op.Responses.Status(atoi(t, status))
			if r == nil {
				continue
			}
			if ct := slices.Collect(maps.Keys(r.Value.Content)); !slices.Equal(ct, []string{"application/json"}) {
				t.Errorf("%s %s %s: content %v, want application/json only", c.method, c.path, status, ct)
			}
			gotHeaders := map[string]bool{}
			for name, h := range r.Value.Headers {
				gotHeaders[name] = h.Value.Required
			}
			if !maps.Equal(gotHeaders, headers) {
				t.Errorf("%s %s %s: headers (name: required) %v, want %v", c.method, c.path, status, gotHeaders, headers)
			}
		}
		if sec := doc.Security; len(sec) != 1 || sec[0]["bearerAuth"] == nil || op.Security != nil {
			t.Errorf("%s %s: security must be the document's bearerAuth", c.method, c.path)
		}
	}
	if got := slices.Sorted(maps.Keys(doc.Paths.Map())); !slices.Equal(got, []string{"/v1/commands/{command_id}", "/v1/sims", "/v1/sims/{id}"}) {
		t.Errorf("paths %v, want those of the contract only", got)
	}
	create := doc.Paths.Find("/v1/sims").Post
	if create.Summary != "Create a SIM" {
		t.Errorf("POST /v1/sims summary %q, want %q", create.Summary, "Create a SIM")
	}
	if body := create.RequestBody.Value; !body.Required || body.Content.Get("application/json") == nil ||
		body.Content.Get("application/json").Schema.Ref != "#/components/schemas/SimInput" {
		t.Error("POST /v1/sims must require a SimInput body as application/json")
	}
	if len(create.Parameters) != 1 || create.Parameters[0].Value.Name != "Idempotency-Key" ||
		create.Parameters[0].Value.In != "header" || create.Parameters[0].Value.Required {
		t.Error("POST /v1/sims must take the one optional header Idempotency-Key")
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers %v, want the one relative server /", doc.Servers)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Error("components/securitySchemes/bearerAuth must be http bearer")
	}
	mna := doc.Components.Responses["MethodNotAllowed"]
	if mna == nil || mna.Value.Headers["Allow"] == nil || !mna.Value.Headers["Allow"].Value.Required {
		t.Error("components/responses/MethodNotAllowed must require header Allow")
	}
	if doc.Components.Responses["NotFound"] == nil {
		t.Error("components/responses/NotFound (the answer to an unknown path) is missing")
	}
}

// schemaCase is a JSON value and whether a schema accepts it.
type schemaCase struct {
	name  string
	json  string
	valid bool
}

func visit(t *testing.T, s *openapi3.Schema, value string) error {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatalf("bad test value %s: %v", value, err)
	}
	return s.VisitJSON(v, openapi3.MultiErrors(),
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)))
}

func checkCases(t *testing.T, s *openapi3.Schema, cases []schemaCase) {
	t.Helper()
	for _, c := range cases {
		err := visit(t, s, c.json)
		if c.valid && err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
		}
		if !c.valid && err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func metadataWithKeys(n int) string {
	m := map[string]int{}
	for i := range n {
		m["k"+strings.Repeat("x", i)] = i
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// The SimInput schema against the worker's own rules: for every case that a
// schema can express, the schema and domain.ParseCommand agree.
func TestOpenAPISimInputMatchesTheWorkersRules(t *testing.T) {
	t.Parallel()
	s := mustLoadDoc(t).Components.Schemas["SimInput"].Value
	base := `"device_id": "d-1", "iccid": "8944500102198304826"`
	cases := []schemaCase{
		{"minimal", `{` + base + `}`, true},
		{"every field", `{` + base + `, "mno_integration_id": "m-1", "msisdn": "447700900123", "status": "active",
			"communication_plan": "IoT Global", "rate_plan": "1 GB", "sim_metadata": {"a": [1, {"b": 12345678901234567890}]}}`, true},
		{"null optional fields", `{` + base + `, "mno_integration_id": null, "msisdn": null, "status": null,
			"communication_plan": null, "rate_plan": null, "sim_metadata": null}`, true},
		{"read-only and unknown fields", `{` + base + `, "id": 7, "company_id": "co-x", "sim_barred": "yes", "created_at": "now", "colour": "blue"}`, true},
		{"empty status", `{` + base + `, "status": ""}`, true},
		{"iccid of 18 digits", `{"device_id": "d-1", "iccid": "894450010219830482"}`, true},
		{"iccid of 22 digits", `{"device_id": "d-1", "iccid": "8944500102198304826123"}`, true},
		{"msisdn of 20 characters", `{` + base + `, "msisdn": "` + strings.Repeat("9", 20) + `"}`, true},
		{"status of 30 code points, 60 bytes", `{` + base + `, "status": "` + strings.Repeat("é", 30) + `"}`, true},
		{"plans of 255 characters", `{` + base + `, "communication_plan": "` + strings.Repeat("p", 255) + `", "rate_plan": "` + strings.Repeat("€", 255) + `"}`, true},
		{"metadata of 50 keys", `{` + base + `, "sim_metadata": ` + metadataWithKeys(50) + `}`, true},

		{"no device_id", `{"iccid": "8944500102198304826"}`, false},
		{"empty device_id", `{"device_id": "", "iccid": "8944500102198304826"}`, false},
		{"null device_id", `{"device_id": null, "iccid": "8944500102198304826"}`, false},
		{"no iccid", `{"device_id": "d-1"}`, false},
		{"iccid of 17 digits", `{"device_id": "d-1", "iccid": "89445001021983048"}`, false},
		{"iccid of 23 digits", `{"device_id": "d-1", "iccid": "89445001021983048261234"}`, false},
		{"iccid with a space", `{"device_id": "d-1", "iccid": "8944500102 198304826"}`, false},
		{"iccid with a trailing newline", `{"device_id": "d-1", "iccid": "8944500102198304826\n"}`, false},
		{"iccid of Arabic-Indic digits", `{"device_id": "d-1", "iccid": "` + strings.Repeat("٣", 19) + `"}`, false},
		{"iccid as a number", `{"device_id": "d-1", "iccid": 8944500102198304826}`, false},
		{"msisdn of 21 characters", `{` + base + `, "msisdn": "` + strings.Repeat("9", 21) + `"}`, false},
		{"status of 31 characters", `{` + base + `, "status": "` + strings.Repeat("s", 31) + `"}`, false},
		{"status as a number", `{` + base + `, "status": 1}`, false},
		{"communication_plan of 256 characters", `{` + base + `, "communication_plan": "` + strings.Repeat("p", 256) + `"}`, false},
		{"rate_plan of 256 characters", `{` + base + `, "rate_plan": "` + strings.Repeat("p", 256) + `"}`, false},
		{"mno_integration_id as a number", `{` + base + `, "mno_integration_id": 1}`, false},
		{"metadata as an array", `{` + base + `, "sim_metadata": [1]}`, false},
		{"metadata as a string", `{` + base + `, "sim_metadata": "{}"}`, false},
		{"metadata of 51 keys", `{` + base + `, "sim_metadata": ` + metadataWithKeys(51) + `}`, false},
		{"not an object", `["d-1"]`, false},
	}
	checkCases(t, s, cases)
	for _, c := range cases {
		if !strings.HasPrefix(c.json, "{") {
			continue // a command whose sim is not an object fails as field sim; the schema says so above
		}
		env := domain.ParseCommand([]byte(`{"command_id": "c-1", "actor_id": "u-1", "sim": ` + c.json + `}`))
		if workerValid := env.Reject == nil; workerValid != c.valid {
			t.Errorf("%s: the worker says valid=%v (%v), the test says %v", c.name, workerValid, env.Reject, c.valid)
		}
	}
}

// The Sim schema accepts the data of the events the worker publishes, and
// nothing else.
func TestOpenAPISimIsTheCreatedEventsData(t *testing.T) {
	t.Parallel()
	s := mustLoadDoc(t).Components.Schemas["Sim"].Value
	at := time.Date(2026, 11, 25, 10, 46, 3, 847458000, time.UTC)
	str := func(s string) *string { return &s }
	for _, sim := range []domain.Sim{
		{ID: "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", CompanyID: "co-acme", DeviceID: "d-1", ICCID: "8944500102198304826",
			Status: "inactive", SimMetadata: json.RawMessage(`{}`), CreatedAt: at, CreatedBy: "u-alice", UpdatedAt: at, UpdatedBy: "u-alice"},
		{ID: "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", CompanyID: "co-acme", DeviceID: "d-1", MNOIntegrationID: str("m-1"),
			ICCID: "8944500102198304826", MSISDN: str("447700900123"), Status: "active", CommunicationPlan: str("IoT Global"),
			RatePlan: str("1 GB"), SimMetadata: json.RawMessage(`{"n":0.1,"deep":{"x":[1,2]}}`),
			CreatedAt: at, CreatedBy: "u-alice", UpdatedAt: at, UpdatedBy: "u-alice"},
	} {
		out, err := domain.NewCreated("simworker", "0193a4d2-70aa-7d41-8c11-5b2e3f4a6c7d", "c-1", sim)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ Data json.RawMessage }
		if err := json.Unmarshal(out.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if err := visit(t, s, string(ev.Data)); err != nil {
			t.Errorf("the data of a sim.created event is refused: %v\n%s", err, ev.Data)
		}
	}
	valid := `"company_id": "co-acme", "device_id": "d-1", "mno_integration_id": null, "iccid": "8944500102198304826",
		"msisdn": null, "status": "inactive", "communication_plan": null, "rate_plan": null, "sim_metadata": {},
		"ctd_data_usage": 0, "ctd_sms_usage": 0, "included_usage": 0, "overage_limit_reached": false, "sim_barred": false,
		"last_sync_at": null, "created_at": "2026-11-25T10:46:03.847458Z", "created_by": "u-alice",
		"updated_at": "2026-11-25T10:46:03.847458Z", "updated_by": "u-alice"`
	checkCases(t, s, []schemaCase{
		{"a stored SIM", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", ` + valid + `}`, true},
		{"a synced SIM", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", ` +
			strings.Replace(valid, `"last_sync_at": null`, `"last_sync_at": "2026-11-26T00:00:00Z"`, 1) + `}`, true},
		{"an id that is not a UUID", `{"id": "sim-1", ` + valid + `}`, false},
		{"no id", `{` + valid + `}`, false},
		{"a field more", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", "extra": 1, ` + valid + `}`, false},
		{"a usage that is not an integer", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", ` +
			strings.Replace(valid, `"ctd_data_usage": 0`, `"ctd_data_usage": 0.5`, 1) + `}`, false},
		{"a time that is not RFC 3339", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", ` +
			strings.Replace(valid, `"created_at": "2026-11-25T10:46:03.847458Z"`, `"created_at": "25/11/2026"`, 1) + `}`, false},
		{"null metadata", `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", ` +
			strings.Replace(valid, `"sim_metadata": {}`, `"sim_metadata": null`, 1) + `}`, false},
	})
}

// Error, Rejection, Pending and CommandState: the data of every rejection
// the worker makes is a Rejection; the shapes hold what the contract says.
func TestOpenAPIErrorsAndStates(t *testing.T) {
	t.Parallel()
	schemas := mustLoadDoc(t).Components.Schemas
	for _, code := range []domain.Code{domain.CodeInvalidArgument, domain.CodeUnauthorized, domain.CodeNotFound,
		domain.CodeAlreadyExists, domain.CodeInternal} {
		out := domain.NewRejected("simworker", "0193a4d2-70aa-7d41-8c11-5b2e3f4a6c7d", "c-1", time.Now(),
			&domain.Error{Code: code, Message: "m", Fields: []domain.FieldError{{Field: "iccid", Reason: "r"}}})
		var ev struct{ Data json.RawMessage }
		if err := json.Unmarshal(out.Event, &ev); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"Error", "Rejection"} {
			if err := visit(t, schemas[name].Value, string(ev.Data)); err != nil {
				t.Errorf("%s refuses the data of a %s rejection: %v", name, code, err)
			}
		}
	}
	errorBody := func(commandID string, status int, code string) string {
		b, _ := json.Marshal(map[string]any{"command_id": commandID, "status": status, "code": code, "message": "m",
			"errors": []any{}})
		return string(b)
	}
	checkCases(t, schemas["Error"].Value, []schemaCase{
		{"every code", errorBody("", 429, "rate_limited"), true},
		{"idempotency_key_reused", errorBody("", 422, "idempotency_key_reused"), true},
		{"method_not_allowed", errorBody("", 405, "method_not_allowed"), true},
		{"unavailable", errorBody("", 503, "unavailable"), true},
		{"an unknown code", errorBody("", 418, "teapot"), false},
		{"a success status", errorBody("", 200, "internal"), false},
		{"no errors array", `{"command_id": "", "status": 400, "code": "invalid_argument", "message": "m"}`, false},
		{"errors null", `{"command_id": "", "status": 400, "code": "invalid_argument", "message": "m", "errors": null}`, false},
		{"a field error without reason", `{"command_id": "", "status": 400, "code": "invalid_argument", "message": "m", "errors": [{"field": "iccid"}]}`, false},
		{"a command id of 129 characters", errorBody(strings.Repeat("c", 129), 400, "invalid_argument"), false},
	})
	checkCases(t, schemas["Rejection"].Value, []schemaCase{
		{"a rejection", errorBody("c-1", 404, "not_found"), true},
		{"rate_limited is no outcome", errorBody("c-1", 429, "rate_limited"), false},
		{"a rejection names its command", errorBody("", 400, "invalid_argument"), false},
	})
	checkCases(t, schemas["Pending"].Value, []schemaCase{
		{"pending", `{"command_id": "c-1", "state": "pending"}`, true},
		{"another state", `{"command_id": "c-1", "state": "created"}`, false},
		{"no command id", `{"command_id": "", "state": "pending"}`, false},
	})
	sim := `{"id": "0193a4d2-6f1e-7c3a-9b1e-2f4c8d0e1a2b", "company_id": "co-acme", "device_id": "d-1",
		"mno_integration_id": null, "iccid": "8944500102198304826", "msisdn": null, "status": "inactive",
		"communication_plan": null, "rate_plan": null, "sim_metadata": {}, "ctd_data_usage": 0, "ctd_sms_usage": 0,
		"included_usage": 0, "overage_limit_reached": false, "sim_barred": false, "last_sync_at": null,
		"created_at": "2026-11-25T10:46:03.847458Z", "created_by": "u-alice", "updated_at": "2026-11-25T10:46:03.847458Z",
		"updated_by": "u-alice"}`
	checkCases(t, schemas["CommandState"].Value, []schemaCase{
		{"pending", `{"command_id": "c-1", "state": "pending", "sim": null, "rejection": null}`, true},
		{"created", `{"command_id": "c-1", "state": "created", "sim": ` + sim + `, "rejection": null}`, true},
		{"rejected", `{"command_id": "c-1", "state": "rejected", "sim": null, "rejection": ` + errorBody("c-1", 400, "already_exists") + `}`, true},
		{"an unknown state", `{"command_id": "c-1", "state": "done", "sim": null, "rejection": null}`, false},
		{"sim left out", `{"command_id": "c-1", "state": "pending", "rejection": null}`, false},
		{"a SIM that is not one", `{"command_id": "c-1", "state": "created", "sim": {"id": "x"}, "rejection": null}`, false},
		{"a rejection that is no outcome", `{"command_id": "c-1", "state": "rejected", "sim": null, "rejection": ` + errorBody("c-1", 429, "rate_limited") + `}`, false},
	})
}

func TestOpenAPIIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := mustLoadDoc(t).Components.Parameters["IdempotencyKey"].Value.Schema.Value
	checkCases(t, s, []schemaCase{
		{"one character", `"a"`, true},
		{"a space", `" "`, true},
		{"a tilde", `"~"`, true},
		{"a UUID", `"5f0c7a52-8d5e-4e0b-9a43-2b6f1d9e7c10"`, true},
		{"128 characters", jsonString(strings.Repeat("k", 128)), true},
		{"empty", `""`, false},
		{"129 characters", jsonString(strings.Repeat("k", 129)), false},
		{"DEL", jsonString("a\x7f"), false},
		{"a tab", jsonString("a\tb"), false},
		{"not ASCII", jsonString("clé"), false},
	})
}

func TestHandlerServesTheDocumentAndTheReference(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(docs.Handler(nil))
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(t *testing.T, method, p string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(req.Header, header)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	t.Run("openapi.yaml is the document as application/yaml", func(t *testing.T) {
		resp, body := get(t, "GET", "/openapi.yaml", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || string(body) != string(docs.OpenAPI) {
			t.Fatalf("%d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := get(t, "GET", "/openapi.yaml", http.Header{"If-None-Match": {etag}}); etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("revalidation with ETag %q: %d, want 304", etag, resp.StatusCode)
		}
	})
	t.Run("docs redirects to docs/", func(t *testing.T) {
		resp, _ := get(t, "GET", "/docs", nil)
		loc, err := resp.Location()
		if resp.StatusCode != http.StatusMovedPermanently || err != nil || loc.Path != "/docs/" {
			t.Fatalf("%d, Location %v (%v)", resp.StatusCode, loc, err)
		}
	})
	t.Run("docs/ is the page, with a policy that keeps it on this server", func(t *testing.T) {
		resp, body := get(t, "GET", "/docs/", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(string(body), `src="swagger-initializer.js"`) {
			t.Fatalf("%d %q:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
			}
		}
	})
	t.Run("every file of the reference, with its content type", func(t *testing.T) {
		want := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
			".css": "text/css; charset=utf-8", ".png": "image/png", ".txt": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}
		files := uiFiles(t)
		for _, name := range files {
			ct, served := want[path.Ext(name)]
			resp, body := get(t, "GET", "/docs/"+name, nil)
			if !served {
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s: %d, want 404 (not a file the page loads)", name, resp.StatusCode)
				}
				continue
			}
			data, _ := fs.ReadFile(docs.UI, name)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || string(body) != string(data) {
				t.Errorf("%s: %d %q, %d bytes; want 200 %q, %d bytes", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ct, len(data))
			}
		}
		for _, name := range []string{"index.html", "swagger-initializer.js", "swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"} {
			if !slices.Contains(files, name) {
				t.Errorf("docs/ui lacks %s", name)
			}
		}
	})
	t.Run("HEAD as GET", func(t *testing.T) {
		resp, body := get(t, "HEAD", "/docs/swagger-ui.css", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || len(body) != 0 {
			t.Fatalf("%d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	})
	t.Run("another method is 405 with Allow", func(t *testing.T) {
		resp, _ := get(t, "POST", "/openapi.yaml", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("%d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("an unknown file is 404", func(t *testing.T) {
		for _, p := range []string{"/docs/nothing.js", "/docs/../openapi.yaml.bak", "/docs/ui/index.html", "/v1/sims"} {
			if resp, _ := get(t, "GET", p, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", p, resp.StatusCode)
			}
		}
	})
	t.Run("an unknown file goes to the given notFound", func(t *testing.T) {
		h := docs.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
		for _, p := range []string{"/docs/nothing.js", "/elsewhere"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
			if rec.Code != http.StatusTeapot {
				t.Errorf("%s: %d, want the fallback's 418", p, rec.Code)
			}
		}
	})
}

func uiFiles(t *testing.T) []string {
	t.Helper()
	var names []string
	err := fs.WalkDir(docs.UI, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Nothing the page loads may come from outside the process: the browser test
// proves it for one page load, this for every reference a file makes,
// including those a page load does not reach.
func TestUILoadsNothingFromOutside(t *testing.T) {
	t.Parallel()
	for _, name := range uiFiles(t) {
		data, err := fs.ReadFile(docs.UI, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range uiProblems(name, string(data)) {
			t.Errorf("%s: %s", name, p)
		}
	}
}

// The checks find what they look for.
func TestUIChecksFindExternalReferences(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, file, src string
		want            []string // a part of each problem, in order
	}{
		{"a script from a CDN", "index.html", `<script src="https://cdn.example/x.js"></script>`, []string{"src=", "mentions"}},
		{"a protocol-relative style sheet", "index.html", `<link rel=stylesheet href=//cdn.example/x.css>`, []string{"href=", "mentions"}},
		{"an inline style's image", "index.html", `<p style="background: url('http://img.example/a.png')">`, []string{"mentions", "styles load"}},
		{"a style element's image", "index.html", `<style>body { background: url(https://img.example/a.png) }</style>`, []string{"mentions", "styles load"}},
		{"a URL in a comment of the page", "index.html", `<!-- see https://example.org --><script src="a.js"></script>`, nil},
		{"an imported font", "x.css", `@import "https://fonts.example/f.css"; a{b:c}`, []string{"https://fonts.example/f.css"}},
		{"a background image", "x.css", `a{background:URL( "https://img.example/a.png" )}`, []string{"https://img.example/a.png"}},
		{"a licence comment and data URIs", "x.css", `/*! https://license.example */ a{background:url("data:image/svg+xml;charset=utf-8,<svg xmlns='http://www.w3.org/2000/svg'/>")} b{background:url(img/a.png)}`, nil},
		{"a new host in the bundle", "swagger-ui-bundle.js", `fetch("https://telemetry.example/x")`, []string{"telemetry.example"}},
		{"an initializer that keeps the validator", "swagger-initializer.js", `SwaggerUIBundle({url: "/openapi.yaml", queryConfigEnabled: false, persistAuthorization: true, tryItOutEnabled: true})`, []string{"validatorUrl"}},
		{"an initializer that loads another document", "swagger-initializer.js", `SwaggerUIBundle({url: "https://petstore.example/v2.json", validatorUrl: null, queryConfigEnabled: false, persistAuthorization: true, tryItOutEnabled: true})`, []string{"mentions", "/openapi"}},
		{"a file of an unknown kind", "font.woff2", ``, []string{"unknown kind"}},
	} {
		got := uiProblems(c.file, c.src)
		if c.file == "swagger-ui-bundle.js" {
			got = slices.DeleteFunc(got, func(p string) bool { return strings.Contains(p, "no longer names") })
		}
		ok := len(got) == len(c.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.Contains(got[i], c.want[i])
		}
		if !ok {
			t.Errorf("%s: problems %q, want ones containing %q", c.name, got, c.want)
		}
	}
}

// uiProblems are the ways a file of the reference could load something from
// outside the process.
func uiProblems(name, src string) []string {
	switch ext := path.Ext(name); {
	case name == "swagger-initializer.js":
		return initializerProblems(src)
	case ext == ".js":
		return bundleProblems(src)
	case ext == ".css":
		var ps []string
		for _, ref := range cssReferences(src) {
			if !local(ref) {
				ps = append(ps, "loads "+ref)
			}
		}
		return ps
	case ext == ".html":
		return htmlProblems(src)
	case ext == ".png":
		return nil // an image references nothing
	case name == "LICENSE" || name == "NOTICE" || strings.HasSuffix(name, ".LICENSE.txt") || name == "swagger-ui-dist.version":
		return nil // text for people, which the page never loads
	default:
		return []string{"a file of an unknown kind: say in uiProblems how to check what it loads"}
	}
}

// absoluteURL is a URL naming a host: with a scheme, or protocol-relative.
var absoluteURL = regexp.MustCompile(`(?i)(?:\bhttps?:)?//[\p{L}0-9-]+(?:\.[\p{L}0-9-]+)+`)

// local is whether a reference stays on the page's server: a relative or
// root-relative URL, a fragment, or data.
func local(ref string) bool {
	ref = strings.TrimSpace(ref)
	if strings.HasPrefix(ref, "//") {
		return false // another host, with the page's scheme
	}
	u, err := url.Parse(ref)
	if err != nil {
		return false
	}
	return u.Scheme == "" || strings.EqualFold(u.Scheme, "data")
}

// cssReferences are the targets of every url(...) and @import of a style
// sheet (or of a page's inline styles), comments left out.
func cssReferences(css string) []string {
	var b strings.Builder // css without comments, strings kept whole
	for i := 0; i < len(css); i++ {
		switch {
		case strings.HasPrefix(css[i:], "/*"):
			end := strings.Index(css[i+2:], "*/")
			if end < 0 {
				i = len(css)
			} else {
				i += 2 + end + 1
			}
		case css[i] == '"' || css[i] == '\'':
			j := skipQuoted(css, i)
			b.WriteString(css[i:j])
			i = j - 1
		default:
			b.WriteByte(css[i])
		}
	}
	s := b.String()
	var refs []string
	for i := 0; i < len(s); i++ {
		switch rest := s[i:]; {
		case s[i] == '"' || s[i] == '\'':
			i = skipQuoted(s, i) - 1 // a string is no reference, unless url( or @import took it
		case hasPrefixFold(rest, "url("):
			ref, n := cssArgument(rest[4:], ")")
			refs = append(refs, ref)
			i += 3 + n
		case hasPrefixFold(rest, "@import"):
			arg := strings.TrimLeft(rest[7:], " \t\r\n")
			if hasPrefixFold(arg, "url(") {
				continue // the url( case takes it
			}
			ref, n := cssArgument(arg, " ;")
			refs = append(refs, ref)
			i += 6 + len(rest[7:]) - len(arg) + n
		}
	}
	return refs
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// skipQuoted returns the index just past the string quoted at s[i].
func skipQuoted(s string, i int) int {
	j := i + 1
	for j < len(s) && s[j] != s[i] {
		if s[j] == '\\' {
			j++
		}
		j++
	}
	return min(j+1, len(s))
}

// cssArgument reads a quoted string, or an unquoted run up to one of stops,
// at the start of s; it returns the value and how many bytes it took.
func cssArgument(s, stops string) (string, int) {
	t := strings.TrimLeft(s, " \t\r\n")
	skipped := len(s) - len(t)
	if t != "" && (t[0] == '"' || t[0] == '\'') {
		j := skipQuoted(t, 0)
		return strings.TrimSuffix(t[1:j], t[:1]), skipped + j
	}
	end := strings.IndexAny(t, stops)
	if end < 0 {
		end = len(t)
	}
	return strings.TrimSpace(t[:end]), skipped + end
}

var (
	htmlComment   = regexp.MustCompile(`(?s)<!--.*?-->`)
	htmlStyles    = regexp.MustCompile(`(?is)<style[^>]*>(.*?)</style>|\sstyle\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	htmlReference = regexp.MustCompile(`(?i)\s(src|href|srcset|poster|data|action|formaction|background)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)
)

func htmlProblems(src string) []string {
	var ps []string
	page := htmlComment.ReplaceAllString(src, "")
	for _, m := range htmlReference.FindAllStringSubmatch(page, -1) {
		if ref := strings.Trim(m[2], `"'`); !local(ref) {
			ps = append(ps, fmt.Sprintf("%s=%q loads from outside", m[1], ref))
		}
	}
	if u := absoluteURL.FindString(page); u != "" {
		ps = append(ps, "mentions "+u+" outside a comment")
	}
	for _, m := range htmlStyles.FindAllStringSubmatch(page, -1) {
		for _, ref := range cssReferences(m[1] + m[2] + m[3]) {
			if !local(ref) {
				ps = append(ps, "its styles load "+ref)
			}
		}
	}
	return ps
}

// initializerProblems: our script must name no other server and must turn
// off the one thing Swagger UI fetches from outside by default, its
// validator badge.
func initializerProblems(src string) []string {
	var ps []string
	if u := absoluteURL.FindString(src); u != "" {
		ps = append(ps, "mentions "+u)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\burl:\s*"/openapi\.yaml"`),
		regexp.MustCompile(`\bvalidatorUrl:\s*null\b`),
		regexp.MustCompile(`\bqueryConfigEnabled:\s*false\b`),
		regexp.MustCompile(`\bpersistAuthorization:\s*true\b`),
		regexp.MustCompile(`\btryItOutEnabled:\s*true\b`),
	} {
		if !want.MatchString(src) {
			ps = append(ps, "lacks "+want.String())
		}
	}
	return ps
}

// bundleHosts are the hosts Swagger UI's bundle names, each with why the page
// never loads from it. A new version that names another host fails the test
// until someone has looked at what the bundle does with it.
var bundleHosts = map[string]string{
	"www.w3.org":           "XML namespace names (SVG, XHTML, XLink, MathML): identifiers",
	"json-schema.org":      "JSON Schema dialect identifiers ($schema), compared, not fetched",
	"spec.openapis.org":    "OpenAPI dialect and meta-schema identifiers, compared, not fetched",
	"datatracker.ietf.org": "RFC links in the bundled parsers' messages",
	"www.rfc-editor.org":   "RFC links in the bundled parsers' messages",
	"github.com":           "links in messages and in core-js's licence note",
	"reactjs.org":          "the link in React's production error messages",
	"redux.js.org":         "the link in Redux's production error messages",
	"fb.me":                "the link in React's prop-types warning",
	"swagger.io":           "a base for resolving relative references where there is no page URL; a browser has one",
	"validator.swagger.io": "the validator badge, fetched unless validatorUrl is null, as the initializer sets it (checked)",
	"spdx.org":             "a link built from a document's licence identifier, followed only when clicked",
	"vladimirgorej.com":    "a dummy base for new URL() when testing whether a server URL is relative",
	"base":                 "https://base<random>: a dummy base for new URL() in sanitizeUrl",
	"example.com":          "an example value generated for format uri",
	"실례.com":               "an example value generated for format iri",
	"twitter.com":          "links Autolinker makes of #hashtags and @mentions in Markdown, followed only when clicked",
	"www.facebook.com":     "as twitter.com",
	"instagram.com":        "as twitter.com",
	"www.tiktok.com":       "as twitter.com",
	"soundcloud.com":       "as twitter.com",
	"":                     `the bare schemes "http://" and "https://" of Autolinker's URL parsing`,
}

var bundleURL = regexp.MustCompile(`(?i)https?://([^/"'\x60\s)\\$:?#]*)`)

// bundleProblems checks the hosts a script names against bundleHosts, both
// ways: a host the list lacks must be looked at; a reason for a host no
// longer named must go.
func bundleProblems(src string) []string {
	var ps []string
	seen := map[string]bool{}
	for _, m := range bundleURL.FindAllStringSubmatch(src, -1) {
		host := strings.ToLower(m[1])
		if seen[host] {
			continue
		}
		seen[host] = true
		if _, ok := bundleHosts[host]; !ok {
			ps = append(ps, fmt.Sprintf("names a new host, %q (%s): find what the bundle does with it; if the page never "+
				"loads from it, add it to bundleHosts with the reason, else turn it off in swagger-initializer.js", host, m[0]))
		}
	}
	for _, host := range slices.Sorted(maps.Keys(bundleHosts)) {
		if !seen[host] {
			ps = append(ps, fmt.Sprintf("no longer names %q: drop it from bundleHosts", host))
		}
	}
	return ps
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n
}
