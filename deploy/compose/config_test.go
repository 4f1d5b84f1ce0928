package compose_test

// Checks of the compose deployment's files that need no Docker: the
// observability profile's Prometheus configuration (promtool), every
// Grafana panel's query (parsed by promtool as a recording rule) naming only
// metrics jetmon has, and the rules file the alert managers mount.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

func TestPrometheusConfig(t *testing.T) {
	promtool := testutil.Tool(t, "apt-get install prometheus", "promtool")
	// The token file the configuration names is a compose secret; promtool
	// checks that it exists, so point it at a stand-in.
	dir := t.TempDir()
	token := filepath.Join(dir, "http_token")
	if err := os.WriteFile(token, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("observability/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "/run/secrets/http_token") {
		t.Fatal("prometheus.yml no longer reads the token from the compose secret")
	}
	local := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(conf), "/run/secrets/http_token", token)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), promtool, "check", "config", local).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// jetmonMetrics returns the metric names the Go code registers.
func jetmonMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(jetmon_[a-z0-9_]+)"`)
	for _, root := range []string{"../../pkg", "../../internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func TestGrafanaDashboardQueries(t *testing.T) {
	promtool := testutil.Tool(t, "apt-get install prometheus", "promtool")
	b, err := os.ReadFile("observability/grafana/dashboards/jetmon.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	known := jetmonMetrics(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	metric := regexp.MustCompile(`jetmon_[a-z0-9_]+`)
	for i, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			q, _ := json.Marshal(tg.Expr)
			fmt.Fprintf(&rules, "      - record: jetmon:panel_%d\n        expr: %s\n", i, q)
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !known[m] && !known[base] {
					t.Errorf("panel %q queries %s, which no jetmon component exports", p.Title, m)
				}
			}
		}
	}
	file := filepath.Join(t.TempDir(), "panels.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the panels' queries: %v\n%s\n%s", err, out, rules.String())
	}
}

func TestComposeRulesLoad(t *testing.T) {
	for _, f := range []string{"rules.yaml", "test-rules.yaml"} {
		if _, err := alerting.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
