package deploy_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	grafanaprom "github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/internal/testutil"
)

type panelExpr struct {
	panel, expr string
	datasource  string
}

// dashboardExprs returns every PromQL expression of every provisioned
// dashboard, with its panel's title.
func dashboardExprs(t *testing.T) []panelExpr {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards in deploy/grafana/dashboards")
	}
	var out []panelExpr
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []panel `json:"panels"`
		}
		if err := json.Unmarshal(data, &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				for _, tg := range p.Targets {
					if tg.Expr != "" {
						out = append(out, panelExpr{panel: p.Title, expr: tg.Expr, datasource: tg.Datasource.UID})
					}
				}
				walk(p.Panels)
			}
		}
		walk(dash.Panels)
	}
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Links []struct {
		Title string `json:"title"`
		URL   string `json:"url"`
	} `json:"links"`
	FieldConfig struct {
		Defaults struct {
			Links []struct {
				Title string `json:"title"`
				URL   string `json:"url"`
			} `json:"links"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

var (
	grafanaBuiltin = regexp.MustCompile(`\$__\w+`)
	grafanaVar     = regexp.MustCompile(`\$\{[^}]+\}|\$\w+`)
)

// parseExpr parses a panel's PromQL once Grafana's variables are replaced
// by what Grafana would put there.
func parseExpr(expr string) (parser.Expr, error) {
	e := grafanaBuiltin.ReplaceAllString(expr, "1m")
	e = grafanaVar.ReplaceAllString(e, "x")
	return parser.NewParser(parser.Options{}).ParseExpr(e)
}

// TestDashboardParses checks every expression parses and every panel uses
// a provisioned data source, without a Collector.
func TestDashboardParses(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 8 {
		t.Errorf("only %d expressions in the dashboards", len(exprs))
	}
	for _, e := range exprs {
		if _, err := parseExpr(e.expr); err != nil {
			t.Errorf("panel %q: %v\n%s", e.panel, err, e.expr)
		}
		if e.datasource != "prometheus" {
			t.Errorf("panel %q queries data source %q, not the provisioned prometheus", e.panel, e.datasource)
		}
	}
}

// span is one span as a trace store returns it: ids as strings, links
// as the span ids they point at.
type span struct {
	name, id, parent, trace string
	links                   []string
}

// receivedSpans lists what the test OTLP receiver got.
func receivedSpans(recv *otlptest.Receiver) []span {
	var out []span
	for _, s := range recv.Spans() {
		sp := span{name: s.GetName(), id: string(s.GetSpanId()), parent: string(s.GetParentSpanId()), trace: string(s.GetTraceId())}
		for _, l := range s.GetLinks() {
			sp.links = append(sp.links, string(l.GetSpanId()))
		}
		out = append(out, sp)
	}
	return out
}

// TestDashboardSchema decodes every provisioned dashboard strictly into
// the Go types Grafana's foundation SDK generates from Grafana's own schema
// (dashboard, the panel types used, the Prometheus query), which rejects
// unknown or mistyped fields anywhere, options and field config included,
// and runs the SDK's validation.
func TestDashboardSchema(t *testing.T) {
	rt := cog.NewRuntime()
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterPanelcfgVariant(bargauge.VariantConfig())
	rt.RegisterDataqueryVariant(grafanaprom.VariantConfig())
	files, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		if err := schemaErr(d.UnmarshalJSONStrict(data)); err != nil {
			t.Errorf("%s does not match Grafana's dashboard schema: %v", filepath.Base(f), err)
			continue
		}
		if err := schemaErr(d.Validate()); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		for _, p := range d.Panels {
			if p.Panel != nil {
				if _, ok := rt.ConfigForPanelcfgVariant(p.Panel.Type); !ok {
					t.Errorf("%s: panel %q is a %s, whose options this test does not check: register its schema above",
						filepath.Base(f), deref(p.Panel.Title), p.Panel.Type)
				}
			}
		}
	}
}

// schemaErr is err, but nil for the SDK's empty error list, which it
// returns as a non-nil error.
func schemaErr(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkNesting asserts the trees of the frames' traces: frames traces
// of their own, each with the full tree of stages, linked to a run span.
func checkNesting(t *testing.T, spans []span, frames int) {
	t.Helper()
	type node struct {
		span
		children []string
	}
	byID := map[string]*node{}
	for _, s := range spans {
		byID[s.id] = &node{span: s}
	}
	for _, n := range byID {
		if p, ok := byID[n.parent]; ok {
			if p.trace != n.trace {
				t.Errorf("%s is in another trace than its parent %s", n.name, p.name)
			}
			p.children = append(p.children, n.name)
		}
	}
	roots, audited := 0, 0
	for _, n := range byID {
		sort.Strings(n.children)
		switch n.name {
		case "process_single_frame":
			roots++
			if n.parent != "" {
				t.Errorf("a frame's root span has a parent")
			}
			if len(n.links) != 1 || byID[n.links[0]] == nil || !strings.HasPrefix(byID[n.links[0]].name, "anonymize_") {
				t.Errorf("a frame's root span links to %d spans, want its run's span (anonymize_video or anonymize_batch)", len(n.links))
			}
			// The leak audit's sample adds an audit span to some frames.
			children := n.children
			if len(children) > 0 && children[0] == "audit" {
				children = children[1:]
				audited++
			}
			want := []string{"decode", "encode", "mask", "person_detection", "pose_estimation", "track", "wait_for_encode", "wait_for_inference", "wait_for_pose", "wait_for_track"}
			if !slices.Equal(children, want) {
				t.Errorf("frame children %v, want %v and perhaps audit", n.children, want)
			}
		case "person_detection":
			if !slices.Equal(n.children, []string{"inference", "postprocess", "preprocess", "wait_for_batch"}) {
				t.Errorf("person_detection children %v", n.children)
			}
		case "pose_estimation":
			if len(n.children)%3 != 0 {
				t.Errorf("pose_estimation children %v: not whole batches", n.children)
			}
		}
	}
	if audited == 0 {
		t.Errorf("no frame has an audit span: the default --audit sample audits frame 0")
	}
	if roots != frames {
		t.Errorf("%d frame traces, want %d", roots, frames)
	}
}
