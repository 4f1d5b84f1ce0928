package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Healthcheck is the `healthcheck` subcommand every binary has, so that a
// container health check works in an image with no shell and no curl: it
// GETs --url (defaultURL unless given; env <PREFIX>_HEALTHCHECK_URL) and
// exits 0 when the answer is 200, 1 otherwise, naming what it got.
func Healthcheck(ctx context.Context, name, prefix, defaultURL string, args []string, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet(name+" healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultURL, "URL that must answer 200 (e.g. the daemon's /readyz)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s healthcheck [--url URL] [--timeout 3s]\n\nExits 0 when URL answers 200 (a container health check without a shell).\n\n", name)
		fs.PrintDefaults()
	}
	if err := ParseWithEnv(fs, prefix+"_HEALTHCHECK", args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: --url %q: %v\n", name, *url, err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "%s healthcheck: %s answered %s\n", name, *url, resp.Status)
		return 1
	}
	return 0
}
