package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// npmDir holds the pinned npm tools (package.json, package-lock.json);
// `make deps-test` runs npm ci there. node_modules is git-ignored, and
// the generated schemas are cached inside it, so a new lock regenerates
// them.
const npmDir = "testdata/schema"

// grafanaTypes is where @grafana/schema keeps its TypeScript types.
const grafanaTypes = npmDir + "/node_modules/@grafana/schema/dist/types/raw"

// schemaSpec names a TypeScript type to turn into a JSON schema.
type schemaSpec struct {
	name string // cache file name
	file string // under grafanaTypes
	typ  string
}

// The dashboard itself, and each panel plugin's options and custom field
// config: the dashboard type leaves those free-form, while Grafana's
// panel plugins define them exactly.
var dashboardSchema = schemaSpec{"dashboard", "dashboard/x/types.gen.d.ts", "Dashboard"}

func panelSchemas(panelType string) (options, fieldConfig *schemaSpec) {
	dir := strings.ReplaceAll(panelType, "-", "")
	file := "composable/" + dir + "/panelcfg/x/types.gen.d.ts"
	options = &schemaSpec{dir + ".Options", file, "Options"}
	switch panelType {
	case "timeseries", "state-timeline", "table":
		fieldConfig = &schemaSpec{dir + ".FieldConfig", file, "FieldConfig"}
	}
	return options, fieldConfig
}

// Each dashboard, each panel's options and each panel's custom field
// config validates against a schema generated from @grafana/schema by
// ts-json-schema-generator, with ajv.
func TestDashboardsMatchGrafanaSchema(t *testing.T) {
	privtest.RequireCommand(t, "node")
	bin := filepath.Join(npmDir, "node_modules", ".bin")
	privtest.RequireFile(t, filepath.Join(bin, "ts-json-schema-generator"), "make deps-test runs npm ci in "+npmDir)
	privtest.RequireFile(t, filepath.Join(bin, "ajv"), "make deps-test runs npm ci in "+npmDir)
	gen := newSchemaCache(t, filepath.Join(npmDir, "node_modules", ".stallmon-schemas"))

	work := t.TempDir()
	// Data files to validate, by the schema they must satisfy.
	byschema := map[schemaSpec][]string{}
	write := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(work, name+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for name := range loadDashboards(t) {
		byschema[dashboardSchema] = append(byschema[dashboardSchema], repo.Path(t, "deploy/grafana/"+name))
	}
	for name, d := range loadDashboards(t) {
		for _, p := range d.leaves() {
			opts, fc := panelSchemas(p.Type)
			base := fmt.Sprintf("%s-panel%d-%s", strings.TrimSuffix(name, ".json"), p.ID, p.Type)
			byschema[*opts] = append(byschema[*opts], write(base+"-options", p.Options))
			if fc != nil {
				if len(p.FieldConfig.Defaults.Custom) == 0 {
					t.Errorf("%s panel %q: no fieldConfig.defaults.custom", name, p.Title)
					continue
				}
				byschema[*fc] = append(byschema[*fc], write(base+"-custom", p.FieldConfig.Defaults.Custom))
			}
		}
	}

	ajv := func(schema string, files ...string) ([]byte, error) {
		args := []string{"validate", "--spec=draft7", "--strict=false", "--all-errors", "-s", schema}
		for _, f := range files {
			args = append(args, "-d", f)
		}
		return exec.Command(filepath.Join(bin, "ajv"), args...).CombinedOutput()
	}
	for spec, files := range byschema {
		out, err := ajv(gen.get(spec), files...)
		if err != nil {
			t.Errorf("%s (%s in %s) rejects:\n%s", spec.name, spec.typ, spec.file, out)
			continue
		}
		t.Logf("%s: %d files valid", spec.name, len(files))
	}

	// The schemas are not vacuous: a misspelt option value and an unknown
	// panel field are refused.
	opts, _ := panelSchemas("timeseries")
	bad := write("bad-options", map[string]any{
		"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []string{}},
		"tooltip": map[string]any{"mode": "every", "sort": "none"},
	})
	if out, err := ajv(gen.get(*opts), bad); err == nil {
		t.Errorf("timeseries options with tooltip mode \"every\" accepted:\n%s", out)
	}
	badPanel := write("bad-dashboard", map[string]any{"schemaVersion": 39, "panels": []any{map[string]any{"type": "timeseries", "colour": "red"}}})
	if out, err := ajv(gen.get(dashboardSchema), badPanel); err == nil {
		t.Errorf("a panel with an unknown field accepted:\n%s", out)
	}
}

// schemaCache generates each schema once per npm install.
type schemaCache struct {
	t   *testing.T
	dir string
	mu  sync.Mutex
}

func newSchemaCache(t *testing.T, dir string) *schemaCache {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &schemaCache{t: t, dir: dir}
}

func (c *schemaCache) get(s schemaSpec) string {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out, err := filepath.Abs(filepath.Join(c.dir, s.name+".json"))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := os.Stat(out); err == nil {
		return out
	}
	src := filepath.Join(grafanaTypes, s.file)
	if _, err := os.Stat(src); err != nil {
		c.t.Fatalf("no Grafana types for %s: %v", s.name, err)
	}
	tmp := out + ".tmp"
	// --no-type-check: the .d.ts files import '@grafana/schema' for shared
	// types, which the generator resolves through node_modules anyway;
	// type-checking all of Grafana's declarations is slow and not ours.
	cmd := exec.Command(filepath.Join(npmDir, "node_modules", ".bin", "ts-json-schema-generator"),
		"--path", src, "--type", s.typ, "--no-type-check", "-o", tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("generating the %s schema from %s: %v\n%s", s.typ, src, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		c.t.Fatal(err)
	}
	return out
}
