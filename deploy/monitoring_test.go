package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// documentedMetrics are the metric names docs/operations.md documents, with the
// series a histogram adds.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("`(simworker_[a-z_]+)(\\*)?").FindAllStringSubmatch(string(readme), -1) {
		names[m[1]] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[m[1]+suffix] = true
		}
	}
	return names
}

// metricsIn parses a PromQL expression and returns the metric names it reads.
func metricsIn(t *testing.T, p parser.Parser, expr string) []string {
	t.Helper()
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// documented: every metric an expression reads is one docs/operations.md lists (a
// db_pool_* family counts as listed).
func documented(t *testing.T, docs map[string]bool, where string, names []string) {
	t.Helper()
	for _, n := range names {
		if !docs[n] && !(strings.HasPrefix(n, "simworker_db_pool_") && docs["simworker_db_pool_"]) {
			t.Errorf("%s reads %s, which docs/operations.md does not document", where, n)
		}
	}
}

// TestAlertRules: deploy/monitoring/alerts.yml is valid for Prometheus
// (its own rule parser, PromQL and templates included), every alert says
// what to look at, and reads only documented metrics.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	content, err := os.ReadFile("monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, p, nil)
	for _, e := range errs {
		t.Errorf("alerts.yml: %v", e)
	}
	if len(errs) > 0 {
		return
	}
	docs := documentedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a summary or a description", r.Alert)
			}
			documented(t, docs, "alert "+r.Alert, metricsIn(t, p, r.Expr))
		}
	}
	// What the operators asked to be told about.
	for _, want := range []string{"SimworkerConsumerPendingGrowing", "SimworkerStuckOnDependency", "SimworkerDeadLetters",
		"SimworkerNotReady", "SimworkerAPIServerErrors", "SimworkerAPIUnavailable"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestDashboard: deploy/monitoring/dashboard.json is a Grafana dashboard
// whose every panel queries Prometheus with valid PromQL over documented
// metrics.
func TestDashboard(t *testing.T) {
	t.Parallel()
	content, err := os.ReadFile("monitoring/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title, UID    string
		SchemaVersion int
		Panels        []struct {
			Title   string
			Type    string
			GridPos struct{ H, W int }
			Targets []struct{ Expr, RefID string }
		}
	}
	if err := json.Unmarshal(content, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) < 8 {
		t.Fatalf("not a dashboard: %q %q schema %d, %d panels", d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	p := parser.NewParser(parser.Options{})
	docs := documentedMetrics(t)
	for _, pn := range d.Panels {
		if pn.Title == "" || pn.Type == "" || pn.GridPos.H == 0 || len(pn.Targets) == 0 {
			t.Errorf("panel %q is incomplete", pn.Title)
		}
		for _, tg := range pn.Targets {
			// Grafana's $__rate_interval is not PromQL: a duration in its place.
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m")
			documented(t, docs, "panel "+pn.Title, metricsIn(t, p, expr))
		}
	}
}
