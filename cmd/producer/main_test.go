package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"help"}, 0, "producer serve"},
		{[]string{"launch"}, 2, `unknown command "launch"`},
		{[]string{"serve", "--help"}, 0, "PRODUCER_HTTP"},
		{[]string{"serve", "--health-config", "/nonexistent.json"}, 2, "nonexistent"},
		{[]string{"serve", "--token-file", "/nonexistent"}, 2, "--token-file"},
		{[]string{"serve", "--http", ":9101"}, 2, "http :9101: listening beyond loopback needs a token"},
		{[]string{"loadgen", "--help"}, 0, "PRODUCER_RATE"},
		{[]string{"loadgen", "--error-rate", "2"}, 2, "error rate 2"},
		{[]string{"loadgen", "--rate", "fast"}, 2, `invalid value "fast"`},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), c.args, &out, &out, noEnv); code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("producer %v: exit %d, output:\n%s\nwant exit %d and %q", c.args, code, out.String(), c.code, c.want)
		}
	}
}
