package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"

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

// exprMetrics lists the metric names a panel's expression reads.
func exprMetrics(t *testing.T, e panelExpr) []string {
	t.Helper()
	ast, err := parseExpr(e.expr)
	if err != nil {
		t.Errorf("panel %q: %v (expr %s)", e.panel, err, e.expr)
		return nil
	}
	var out []string
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			if name == "" {
				for _, m := range vs.LabelMatchers {
					if m.Name == "__name__" {
						name = m.Value
					}
				}
			}
			if name != "" {
				out = append(out, name)
			}
		}
		return nil
	})
	return out
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

// checkNesting asserts the trees of the frames' traces as the Jaeger
// exporter sent them.
func checkNesting(t *testing.T, recv *otlptest.Receiver, frames int) {
	t.Helper()
	type node struct {
		name     string
		parent   string
		trace    string
		children []string
	}
	byID := map[string]*node{}
	for _, s := range recv.Spans() {
		id := string(s.GetSpanId())
		byID[id] = &node{name: s.GetName(), parent: string(s.GetParentSpanId()), trace: string(s.GetTraceId())}
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
