// Package archtest checks the import rules of docs/architecture.md against
// the packages as they are.
package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/jetmon/jetmon/"

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

// violation returns why importing imp from p breaks a rule, or "".
func violation(p, imp string) string {
	if !strings.HasPrefix(imp, module) {
		return ""
	}
	p, imp = strings.TrimPrefix(p, module), strings.TrimPrefix(imp, module)
	switch {
	case p == "pkg/events":
		return "pkg/events imports no other jetmon package"
	case strings.HasPrefix(p, "pkg/") && strings.HasPrefix(imp, "cmd/"):
		return "pkg/ never imports cmd/"
	case strings.HasPrefix(p, "pkg/") && strings.HasPrefix(imp, "internal/") && imp != "internal/redact":
		return "pkg/ imports no internal/ package but the leaf internal/redact (another module must be able to use pkg/)"
	case strings.HasPrefix(p, "internal/") && strings.HasPrefix(imp, "cmd/"):
		return "internal/ never imports cmd/"
	}
	return ""
}

func TestImportRules(t *testing.T) {
	leaves := map[string]bool{"internal/redact": true, "internal/httpd": true, "internal/natsauth": true}
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			if why := violation(p.ImportPath, imp); why != "" {
				t.Errorf("%s imports %s: %s", p.ImportPath, imp, why)
			}
			if leaves[strings.TrimPrefix(p.ImportPath, module)] && strings.HasPrefix(imp, module) {
				t.Errorf("%s imports %s: it is a leaf and imports no jetmon package", p.ImportPath, imp)
			}
		}
	}
}

// The rules can fail: each one catches the import it forbids.
func TestRulesCatchViolations(t *testing.T) {
	for _, c := range [][2]string{
		{"pkg/events", "streams"},
		{"pkg/breaker", "cmd/jetmon"},
		{"pkg/alerting", "internal/httpd"},
		{"internal/pipeline", "cmd/aggregator"},
	} {
		if violation(module+c[0], module+c[1]) == "" {
			t.Errorf("%s importing %s is not caught", c[0], c[1])
		}
	}
	if why := violation(module+"pkg/alerting", module+"internal/redact"); why != "" {
		t.Errorf("pkg/alerting importing internal/redact is refused: %s", why)
	}
}
