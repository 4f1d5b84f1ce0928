package cli_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/cli"
)

func TestParseWithEnv(t *testing.T) {
	env := map[string]string{"JETMON_RATE": "7", "JETMON_LOG_LEVEL": "debug", "JETMON_DURATION": "3s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	rate := fs.Int("rate", 1, "")
	level := fs.String("log-level", "info", "")
	dur := fs.Duration("duration", 0, "")
	if err := cli.ParseWithEnv(fs, "JETMON", []string{"-rate", "9"}, lookup); err != nil {
		t.Fatal(err)
	}
	if *rate != 9 || *level != "debug" || *dur != 3*time.Second {
		t.Errorf("rate=%d level=%q duration=%s; want the flag to win over the environment", *rate, *level, *dur)
	}

	env["JETMON_RATE"] = "fast"
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("rate", 1, "")
	err := cli.ParseWithEnv(fs, "JETMON", nil, lookup)
	if err == nil || !strings.Contains(err.Error(), "JETMON_RATE") || !strings.Contains(err.Error(), "fast") {
		t.Errorf("a bad environment value: %v, want an error naming JETMON_RATE and its value", err)
	}
}

// TestParseExitCodes: help ends the command with 0 and the usage (with the
// variables), a bad flag or variable with 2 and the error named by command.
func TestParseExitCodes(t *testing.T) {
	newFS := func(out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("jetmon thing", flag.ContinueOnError)
		fs.SetOutput(out)
		fs.Int("rate", 1, "events per second")
		return fs
	}
	none := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name     string
		args     []string
		env      func(string) (string, bool)
		code     int
		ok       bool
		out, err string
	}{
		{"fine", []string{"-rate", "3"}, none, 0, true, "", ""},
		{"help", []string{"-help"}, none, 0, false, "JETMON_RATE (-rate)", ""},
		{"bad flag", []string{"-rate", "x"}, none, 2, false, "", "jetmon thing: invalid value"},
		{"unknown flag", []string{"-speed", "3"}, none, 2, false, "", "jetmon thing: flag provided but not defined: -speed"},
		{"bad variable", nil, func(k string) (string, bool) { return "x", k == "JETMON_RATE" }, 2, false, "", `jetmon thing: environment variable JETMON_RATE="x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, stderr strings.Builder
			code, ok := cli.Parse(newFS(&out), "JETMON", tc.args, tc.env, &stderr)
			if code != tc.code || ok != tc.ok {
				t.Errorf("Parse = %d, %v; want %d, %v", code, ok, tc.code, tc.ok)
			}
			if !strings.Contains(out.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) || (tc.err == "") != (stderr.Len() == 0) {
				t.Errorf("usage output %q, stderr %q; want them to hold %q and %q", out.String(), stderr.String(), tc.out, tc.err)
			}
		})
	}
}

func TestNewLoggerRejectsBadLevel(t *testing.T) {
	if _, err := cli.NewLogger(io.Discard, "loud", false); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("NewLogger(loud) = %v", err)
	}
}

func TestSecretPrefersTheFile(t *testing.T) {
	env := func(k string) (string, bool) { return " from-env\n", k == "X_TOKEN" }
	if v, err := cli.Secret(env, "X_TOKEN", ""); err != nil || v != "from-env" {
		t.Fatalf("env: %q %v", v, err)
	}
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := cli.Secret(env, "X_TOKEN", f); err != nil || v != "from-file" {
		t.Fatalf("file: %q %v", v, err)
	}
	if _, err := cli.Secret(env, "X_TOKEN", f+".missing"); err == nil {
		t.Fatal("a missing file gave no error")
	}
}

func TestIsTerminal(t *testing.T) {
	open := func(name string, flag int) *os.File {
		t.Helper()
		f, err := os.OpenFile(name, flag, 0o600)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	for _, tc := range []struct {
		name string
		f    *os.File
		want bool
	}{
		{"/dev/null, a character device that is no terminal", open(os.DevNull, os.O_WRONLY), false},
		{"a regular file", open(filepath.Join(t.TempDir(), "out"), os.O_CREATE|os.O_WRONLY), false},
		{"a pipe", w, false},
		{"nil", nil, false},
		// The master side of a new pseudo-terminal answers the terminal
		// ioctl, with no controlling terminal needed.
		{"a pseudo-terminal", open("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cli.IsTerminal(tc.f); got != tc.want {
				t.Errorf("IsTerminal = %v, want %v", got, tc.want)
			}
		})
	}
}
