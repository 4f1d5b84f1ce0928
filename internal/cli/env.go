// Package cli holds the process wiring the jetmon binaries share: flags that
// can also be set from the environment, and the logger.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// EnvName returns the environment variable that sets flag name: the prefix,
// then the name upper-cased with '-' turned into '_' (e.g. JETMON_NATS_URL for
// prefix "JETMON" and flag "nats-url").
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ParseWithEnv parses args into fs, taking any flag not given on the command
// line from its environment variable (see [EnvName]); the command line wins.
// lookup is os.LookupEnv in production. Errors name the variable and value.
// The usage text lists every variable.
func ParseWithEnv(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool)) error {
	usage := fs.Usage
	fs.Usage = func() {
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		fmt.Fprintf(fs.Output(), "\nEvery flag can also be set by an environment variable, e.g.\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  %s (-%s)\n", EnvName(prefix, f.Name), f.Name)
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		env := EnvName(prefix, f.Name)
		if v, ok := lookup(env); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", env, v, serr)
			}
		}
	})
	return err
}

// Parse is how a command reads its flags: [ParseWithEnv], and when that
// ends the command, the exit code. ok is false after -help (code 0; the
// usage, with every variable, is printed to fs's output) and after a bad
// flag or variable (code 2; the error, prefixed with fs.Name(), is printed to
// stderr). A command uses it as
//
//	if code, ok := cli.Parse(fs, "PREFIX", args, env, stderr); !ok {
//		return code
//	}
func Parse(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool), stderr io.Writer) (code int, ok bool) {
	err := ParseWithEnv(fs, prefix, args, lookup)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return 2, false
	}
}

// NewLogger returns a zerolog logger writing to w: human-readable console
// output when pretty is set, JSON lines otherwise.
func NewLogger(w io.Writer, level string, pretty bool) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level %q: %w", level, err)
	}
	if pretty {
		f, isFile := w.(*os.File)
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isFile || !IsTerminal(f)}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// IsTerminal reports whether f is a terminal: whether the terminal ioctl
// (TCGETS on Linux, TIOCGETA on the BSDs and macOS) succeeds on it, as
// isatty(3) does. A character device that is not a terminal, such as
// /dev/null, is not one; nor is a nil f.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

// Secret returns a credential from file (trimmed) when file is set, else
// from the environment variable name. Secrets come from files or the
// environment, never from a flag value that shows in ps.
func Secret(env func(string) (string, bool), name, file string) (string, error) {
	if file == "" {
		v, _ := env(name)
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
