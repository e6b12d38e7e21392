package dashboards

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// dashboard is the part of a dashboard's JSON the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Datasource  *datasourceRef  `json:"datasource"`
	GridPos     gridPos         `json:"gridPos"`
	Targets     []query         `json:"targets"`
	Panels      []panel         `json:"panels"` // of a row
	Options     json.RawMessage `json:"options"`
	FieldConfig struct {
		Defaults struct {
			Custom json.RawMessage `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ X, Y, W, H int }

type query struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
	Instant    bool           `json:"instant"`
	Format     string         `json:"format"`
}

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
}

// loadDashboards returns every dashboard in the package, by file name.
func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	names, err := filepath.Glob(repo.Path(t, "deploy/grafana/*.json"))
	if err != nil || len(names) < 2 {
		t.Fatalf("dashboards: %v, %v", names, err)
	}
	out := map[string]dashboard{}
	for _, name := range names {
		b := deployFile(t, "grafana/"+filepath.Base(name))
		name = filepath.Base(name)
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = d
	}
	return out
}

// leaves returns the panels that show data, rows flattened.
func (d dashboard) leaves() []panel {
	var out []panel
	for _, p := range d.Panels {
		if p.Type == "row" {
			out = append(out, p.Panels...)
			continue
		}
		out = append(out, p)
	}
	return out
}

var literalInstance = regexp.MustCompile(`\b(instance|node|job)\s*=~?\s*"[^"$]`)

// What Grafana needs to import a dashboard anywhere: the data source as a
// variable, unique panel ids, a layout inside the 24-column grid, and no
// instance, node or job name written into a query.
func TestDashboardStructure(t *testing.T) {
	for name, d := range loadDashboards(t) {
		t.Run(name, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q", d.UID, d.Title)
			}
			if len(d.Templating.List) == 0 || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Name != "datasource" {
				t.Fatalf("first variable must be the data source, got %+v", d.Templating.List)
			}
			for _, v := range d.Templating.List[1:] {
				if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
					t.Errorf("variable %s does not use ${datasource}: %+v", v.Name, v.Datasource)
				}
			}
			ids := map[int]bool{}
			for _, p := range d.Panels {
				if ids[p.ID] {
					t.Errorf("duplicate panel id %d", p.ID)
				}
				ids[p.ID] = true
				if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
					t.Errorf("panel %q outside the grid: %+v", p.Title, g)
				}
			}
			for _, p := range d.leaves() {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
					t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				refs := map[string]bool{}
				for _, q := range p.Targets {
					if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
						t.Errorf("panel %q: query %+v needs an expr and a unique refId", p.Title, q)
					}
					refs[q.RefID] = true
					if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q query %s: datasource %+v", p.Title, q.RefID, q.Datasource)
					}
					if m := literalInstance.FindString(q.Expr); m != "" {
						t.Errorf("panel %q query %s names a fixed %s: %s", p.Title, q.RefID, m, q.Expr)
					}
				}
			}
		})
	}
}

// The provisioning file is what Grafana reads: one file provider.
func TestProvisioningFile(t *testing.T) {
	b := deployFile(t, "grafana/provisioning.yaml")
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Folder  string `yaml:"folder"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	if prov.APIVersion != 1 || len(prov.Providers) != 1 {
		t.Fatalf("provisioning = %+v", prov)
	}
	p := prov.Providers[0]
	if p.Type != "file" || p.Name == "" || !strings.HasPrefix(p.Options.Path, "/") {
		t.Fatalf("provider = %+v, want a file provider with an absolute path", p)
	}
}

// Every alert the issue asks for exists, so a rename breaks this test.
func TestAlertNames(t *testing.T) {
	rules := loadRules(t)
	var names []string
	for _, r := range rules.alerts() {
		names = append(names, r.Alert)
	}
	for _, want := range []string{"StallmonTargetStalled", "StallmonTargetUnkillable", "StallmonAgentDown", "StallmonHeartbeatLost"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s in %v", want, names)
		}
	}
}

// loadRules parses the shipped alerting rules.
func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b := deployFile(t, "prometheus/stallmon-rules.yml")
	var rules ruleFile
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	return rules
}

type ruleFile struct {
	Groups []struct {
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func (f ruleFile) alerts() []rule {
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}
