// Package openapitest checks, in tests, that HTTP requests and the API's
// answers to them conform to the API's OpenAPI document (docs.OpenAPI), with
// kin-openapi's openapi3filter. It checks shapes, not tokens: any bearer
// token satisfies the document's security requirement.
//
//	v := openapitest.New(t)
//	resp, respBody := send(t, req, reqBody) // your client
//	v.Check(t, req, reqBody, resp, respBody)
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"simworker/docs"
)

// Validator checks requests and answers against one loaded document. It is
// safe for concurrent use by parallel tests.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	// The answers to a path that does not exist and to a method a path does
	// not take: no operation declares them, the document keeps them among its
	// components.
	notFound, methodNotAllowed *openapi3.Operation
}

// New loads and validates docs.OpenAPI. The document being invalid fails t.
func New(t testing.TB) *Validator {
	t.Helper()
	v, err := NewFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("openapitest: %v", err)
	}
	return v
}

// NewFromData is New for another document: it must be valid OpenAPI 3.0 and
// declare the components responses NotFound and MethodNotAllowed.
func NewFromData(data []byte) (*Validator, error) {
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("loading the document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("the document is invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing the document: %w", err)
	}
	v := &Validator{doc: doc, router: router, opts: &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status is an error, not a pass
		MultiError:            true,
		AuthenticationFunc:    anyBearer,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			// kin-openapi knows format uuid but checks it only when asked. RFC 9562
			// admits version 7, the worker's SIM ids.
			openapi3.WithStringFormatValidator("uuid",
				openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
			// Say where and why, without printing the whole schema and value.
			openapi3.DisableSchemaErrorDetails(),
		},
	}}
	for _, c := range []struct {
		name string
		op   **openapi3.Operation
		code int
	}{{"NotFound", &v.notFound, http.StatusNotFound}, {"MethodNotAllowed", &v.methodNotAllowed, http.StatusMethodNotAllowed}} {
		var ref *openapi3.ResponseRef
		if doc.Components != nil {
			ref = doc.Components.Responses[c.name]
		}
		if ref == nil || ref.Value == nil {
			return nil, fmt.Errorf("the document has no components/responses/%s", c.name)
		}
		*c.op = &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(c.code, ref))}
	}
	return v, nil
}

// Check reports through t.Errorf every way the exchange departs from the
// document: the request (sent with body reqBody) must conform, and so must
// the answer (read into respBody). Use it for requests that are meant to be
// valid; CheckResponse is for those that break the document on purpose.
// Both also check what the document says in words: the Location of a 201
// names the body's id, that of a 202 the body's command, and Sim-Command-Id
// is present exactly when an error body names a command, and equal to it.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.Validate(req, reqBody, resp, respBody); err != nil {
		t.Errorf("%s %s -> %d does not conform to docs/openapi.yaml:\n%v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
}

// CheckResponse is Check for the answer alone: for requests that break the
// document on purpose (no token, a malformed Idempotency-Key, another
// Content-Type, a body that is not a SimInput), whose answers must conform
// all the same.
func (v *Validator) CheckResponse(t testing.TB, req *http.Request, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.ValidateResponse(req, resp, respBody); err != nil {
		t.Errorf("%s %s -> %d: the answer does not conform to docs/openapi.yaml:\n%v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
}

// Validate is Check returning what it finds, nil when the exchange conforms.
func (v *Validator) Validate(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	return v.validate(req, reqBody, true, resp, respBody)
}

// ValidateResponse is CheckResponse returning what it finds.
func (v *Validator) ValidateResponse(req *http.Request, resp *http.Response, respBody []byte) error {
	return v.validate(req, nil, false, resp, respBody)
}

func (v *Validator) validate(req *http.Request, reqBody []byte, withRequest bool, resp *http.Response, respBody []byte) error {
	ctx := context.Background()
	r := req.Clone(ctx)
	if r.Method == http.MethodHead {
		// Answered as GET without a body (net/http's mux does so): check the
		// status and headers as GET's.
		r.Method = http.MethodGet
	}
	setBody(r, reqBody)

	// A request the document has no operation for still gets the answer the
	// document gives it: 404 for an unknown path, 405 for another method.
	var errs []error
	route, params, err := v.router.FindRoute(r)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if withRequest {
			errs = append(errs, fmt.Errorf("request: no path of the document matches %s", r.URL.Path))
		}
		errs = append(errs, v.validateResponse(ctx, v.syntheticInput(r, v.notFound), req.Method, resp, respBody))
		return errors.Join(errs...)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if withRequest {
			errs = append(errs, fmt.Errorf("request: %s does not take %s", r.URL.Path, req.Method))
		}
		errs = append(errs, v.validateResponse(ctx, v.syntheticInput(r, v.methodNotAllowed), req.Method, resp, respBody))
		if resp.StatusCode == http.StatusMethodNotAllowed {
			errs = append(errs, v.checkAllow(r.URL.Path, req.Method, resp.Header.Get("Allow")))
		}
		return errors.Join(errs...)
	case err != nil:
		return fmt.Errorf("routing %s %s: %w", req.Method, r.URL.Path, err)
	}

	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: v.opts}
	if withRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("request: %w", err))
		}
	}
	errs = append(errs, v.validateResponse(ctx, in, req.Method, resp, respBody))
	return errors.Join(errs...)
}

// syntheticInput routes r to an operation of the validator's own that
// declares only the given answer.
func (v *Validator) syntheticInput(r *http.Request, op *openapi3.Operation) *openapi3filter.RequestValidationInput {
	return &openapi3filter.RequestValidationInput{Request: r, Options: v.opts,
		Route: &routers.Route{Spec: v.doc, Path: r.URL.Path, PathItem: &openapi3.PathItem{}, Method: r.Method, Operation: op}}
}

func (v *Validator) validateResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, method string, resp *http.Response, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Options: v.opts}
	if method == http.MethodHead {
		opts := *v.opts
		opts.ExcludeResponseBody = true
		out.Options = &opts
		body = nil
	}
	out.SetBodyBytes(body)
	var errs []error
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, fmt.Errorf("response: %w", err))
	}
	if method != http.MethodHead {
		errs = append(errs, checkLinks(resp, body))
	}
	return errors.Join(errs...)
}

// checkLinks checks what the document says in words about headers that
// repeat the body.
func checkLinks(resp *http.Response, body []byte) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil // not an object: the schema check has said so
	}
	str := func(name string) (string, bool) {
		var s string
		return s, json.Unmarshal(fields[name], &s) == nil
	}
	id, hasID := str("id")
	command, hasCommand := str("command_id")
	location, commandIDs := resp.Header.Get("Location"), resp.Header.Values("Sim-Command-Id")
	var errs []error
	switch {
	case resp.StatusCode == http.StatusCreated && hasID:
		if want := "/v1/sims/" + id; location != want {
			errs = append(errs, fmt.Errorf("header Location is %q, want %q (the body's id)", location, want))
		}
	case resp.StatusCode == http.StatusAccepted && hasCommand:
		if want := "/v1/commands/" + command; location != want {
			errs = append(errs, fmt.Errorf("header Location is %q, want %q (the body's command_id)", location, want))
		}
		if len(commandIDs) != 1 || commandIDs[0] != command {
			errs = append(errs, fmt.Errorf("header Sim-Command-Id is %q, want the body's command_id %q", commandIDs, command))
		}
	case resp.StatusCode >= 400 && hasCommand:
		switch {
		case command == "" && len(commandIDs) > 0:
			errs = append(errs, fmt.Errorf("header Sim-Command-Id is %q but the body says no command was made (command_id \"\")", commandIDs))
		case command != "" && (len(commandIDs) != 1 || commandIDs[0] != command):
			errs = append(errs, fmt.Errorf("header Sim-Command-Id is %q, want the body's command_id %q", commandIDs, command))
		}
	}
	return errors.Join(errs...)
}

// checkAllow checks that a 405's Allow lists every method the document
// gives the path, and not the one refused. It may list more (HEAD beside
// GET, as net/http's mux does).
func (v *Validator) checkAllow(path, refused, allow string) error {
	item := v.pathItem(path)
	if item == nil {
		return nil
	}
	var listed []string
	for m := range strings.SplitSeq(allow, ",") {
		listed = append(listed, strings.TrimSpace(m))
	}
	var errs []error
	for m := range item.Operations() {
		if !slices.Contains(listed, m) {
			errs = append(errs, fmt.Errorf("header Allow is %q: it lacks %s, which the document gives %s", allow, m, path))
		}
	}
	if slices.Contains(listed, refused) {
		errs = append(errs, fmt.Errorf("header Allow is %q: it lists %s, the method refused", allow, refused))
	}
	return errors.Join(errs...)
}

// pathItem is the document's path item whose template matches path.
func (v *Validator) pathItem(path string) *openapi3.PathItem {
	segs := strings.Split(path, "/")
	for tmpl, item := range v.doc.Paths.Map() {
		t := strings.Split(tmpl, "/")
		if len(t) != len(segs) {
			continue
		}
		match := true
		for i := range t {
			if strings.HasPrefix(t[i], "{") && strings.HasSuffix(t[i], "}") {
				match = match && segs[i] != ""
			} else {
				match = match && t[i] == segs[i]
			}
		}
		if match {
			return item
		}
	}
	return nil
}

// anyBearer accepts any well-formed bearer credentials (RFC 6750: the scheme,
// case-insensitive, a space and a token): the document's security is
// checked for shape; whether the token is good is the API's business.
func anyBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return in.NewError(fmt.Errorf("openapitest handles only http bearer, not %s %s", s.Type, s.Scheme))
	}
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return in.NewError(errors.New("no bearer token in Authorization"))
	}
	return nil
}

func setBody(r *http.Request, body []byte) {
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		return
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
}
