package cli_test

import (
	"strings"
	"testing"

	"github.com/jetmon/jetmon/internal/cli"
)

// TestProgress: the first Draw draws, a second within 200 ms does not, Done
// always draws the final state and ends the line; an off bar draws nothing.
func TestProgress(t *testing.T) {
	var out strings.Builder
	bar := cli.NewProgress(&out, "replay", false)
	bar.Draw(0.25, "first")
	bar.Draw(0.5, "throttled")
	bar.Done(1, "last")
	want := "\rreplay [#######.......................]  25.0%  first " +
		"\rreplay [##############################] 100.0%  last \n"
	if out.String() != want {
		t.Errorf("drew %q\nwant %q", out.String(), want)
	}
	var quiet strings.Builder
	off := cli.NewProgress(&quiet, "replay", true)
	off.Draw(0.5, "x")
	off.Done(1, "y")
	if off != nil || quiet.Len() != 0 || off.Due() {
		t.Errorf("an off bar drew %q", quiet.String())
	}
}
