package monitor_test

import (
	"bytes"
	"context"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestREADMEExampleAsAnOutsideModule is the first hour of a library user:
// the README's Go program, copied into a module of its own (which the
// compiler allows to import only the public packages), builds, runs, shuts
// down and finds every timed call stored. The block must also be gofmt'ed,
// since readers copy it.
func TestREADMEExampleAsAnOutsideModule(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	prog := readmeProgram(t, string(readme))
	if formatted, err := format.Source([]byte(prog)); err != nil || !bytes.Equal(formatted, []byte(prog)) {
		t.Errorf("the README's Go program is not gofmt'ed (err %v)", err)
	}

	dir := t.TempDir()
	gomod := "module example.com/quickstart\n\ngo 1.26.0\n\nrequire github.com/jetmon/jetmon v0.0.0\n\nreplace github.com/jetmon/jetmon => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(prog)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".")
	cmd.Dir = dir
	// The repo's own go.sum vouches for every module; they come from the
	// module cache (`go mod download`), the proxy only for a cold cache.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go run of the README example: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if got, want := strings.TrimSpace(stdout.String()), "timed calls stored: 1000"; got != want {
		t.Errorf("the README example printed %q, want %q (stderr:\n%s)", got, want, &stderr)
	}
}

// readmeProgram returns the Go block of the README's "Using it from Go"
// section: the one complete program.
func readmeProgram(t *testing.T, readme string) string {
	t.Helper()
	_, sec, ok := strings.Cut(readme, "\n## Using it from Go\n")
	if !ok {
		t.Fatal(`README has no "## Using it from Go" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, code, ok := strings.Cut(sec, "```go\n")
	if !ok {
		t.Fatal(`"Using it from Go" has no Go block`)
	}
	code, _, ok = strings.Cut(code, "```")
	if !ok || !strings.HasPrefix(strings.TrimSpace(code), "// ") || !strings.Contains(code, "package main") {
		t.Fatalf("the Go block of \"Using it from Go\" is not a whole program:\n%s", code)
	}
	return code
}
