package streams_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

func TestDefinitions(t *testing.T) {
	defs, err := streams.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range defs {
		names[d.Config.Name] = true
		c := d.Config
		if c.Retention != jetstream.LimitsPolicy || c.MaxAge <= 0 || c.MaxBytes <= 0 || c.Duplicates <= 0 || c.Replicas != 1 || c.Storage != jetstream.FileStorage {
			t.Errorf("%s: want limits retention, max age and bytes, a dedup window, R1 file storage: %+v", d.File, c)
		}
	}
	for _, want := range []string{streams.Performance, streams.Health, streams.Monitoring, streams.Validation, streams.System, streams.Alerts, streams.DeadLetter, streams.Windows} {
		if !names[want] {
			t.Errorf("no definition for stream %s", want)
		}
	}
	// Every event type lands in its family's stream.
	for _, typ := range events.Types() {
		subject := events.Subject(typ, "src")
		var owners []string
		for _, d := range defs {
			for _, s := range d.Config.Subjects {
				if prefix, ok := strings.CutSuffix(s, ">"); ok && strings.HasPrefix(subject, prefix) {
					owners = append(owners, d.Config.Name)
				}
			}
		}
		if len(owners) != 1 || owners[0] != streams.ForFamily(typ.Family()) {
			t.Errorf("%s is stored by %v, want exactly %s", subject, owners, streams.ForFamily(typ.Family()))
		}
	}
}

func TestParseRejectsBadDefinitions(t *testing.T) {
	for name, data := range map[string]string{
		"typo":     `{"name":"X","subjects":["x.>"],"duplicate_window":1,"max_agee":5}`,
		"no name":  `{"subjects":["x.>"],"duplicate_window":1}`,
		"no dedup": `{"name":"X","subjects":["x.>"]}`,
		"not json": `{`,
	} {
		if _, err := streams.Parse(name+".json", []byte(data)); err == nil || !strings.Contains(err.Error(), name+".json") {
			t.Errorf("%s: Parse = %v, want an error naming the file", name, err)
		}
	}
}

func TestApplyIsIdempotentAndReportsConflicts(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defs, _ := streams.Definitions()

	outcomes := func(rs []streams.Result) map[streams.Outcome]int {
		m := map[streams.Outcome]int{}
		for _, r := range rs {
			m[r.Outcome]++
		}
		return m
	}
	rs, err := streams.Apply(ctx, js, defs, streams.Options{})
	if err != nil || outcomes(rs)[streams.Created] != len(defs) {
		t.Fatalf("first Apply: %v %v", rs, err)
	}
	rs, err = streams.Apply(ctx, js, defs, streams.Options{})
	if err != nil || outcomes(rs)[streams.Unchanged] != len(defs) {
		t.Fatalf("second Apply changed something: %v %v", rs, err)
	}
	changed := append([]streams.Definition(nil), defs...)
	changed[0].Config.MaxAge = time.Hour
	rs, err = streams.Apply(ctx, js, changed, streams.Options{})
	if err != nil || outcomes(rs)[streams.Updated] != 1 {
		t.Fatalf("Apply with a new max_age: %v %v", rs, err)
	}

	refused := append([]streams.Definition(nil), defs...)
	refused[0].Config.Storage = jetstream.MemoryStorage
	overlap := streams.Definition{File: "rogue.json", Config: jetstream.StreamConfig{Name: "ROGUE", Subjects: []string{"performance.>"}, Duplicates: time.Minute}}
	rs, err = streams.Apply(ctx, js, append(refused, overlap), streams.Options{})
	if !errors.Is(err, streams.ErrConflict) {
		t.Fatalf("conflicting Apply: %v, want ErrConflict", err)
	}
	for _, want := range []string{refused[0].Config.Name, refused[0].File, "storage", "ROGUE", "rogue.json", "overlap"} {
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
			t.Errorf("conflict error does not mention %q: %v", want, err)
		}
	}
	if len(rs) != len(defs)-1 {
		t.Errorf("the other streams were not applied: %v", rs)
	}
}

func TestApplyOptions(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	defs, _ := streams.Definitions()
	if _, err := streams.Apply(t.Context(), js, defs, streams.Options{MaxBytesScale: 0.5}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), defs[0].Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CachedInfo().Config.MaxBytes, defs[0].Config.MaxBytes/2; got != want {
		t.Errorf("MaxBytesScale 0.5: max_bytes %d, want %d", got, want)
	}
}

// TestNatsCLIAcceptsDefinitions loads every file with `nats stream add
// --config`. CI installs the nats CLI (.ci/run); without it the test fails,
// or skips with JETMON_SKIP_MISSING=1.
func TestNatsCLIAcceptsDefinitions(t *testing.T) {
	bin := testutil.Tool(t, "go install github.com/nats-io/natscli/nats@v0.5.0", "nats")
	srv := natstest.Start(t)
	files, _ := filepath.Glob("*.json")
	if len(files) == 0 {
		t.Fatal("no definition files")
	}
	for _, f := range files {
		out, err := exec.CommandContext(t.Context(), bin, "--server", srv.ClientURL(), "stream", "add", "--config", f).CombinedOutput()
		if err != nil {
			t.Errorf("nats stream add --config %s: %v\n%s", f, err, out)
		}
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	defs, _ := streams.Definitions()
	rs, err := streams.Apply(t.Context(), js, defs, streams.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Outcome != streams.Unchanged {
			t.Errorf("%s created by the nats CLI differs from the definition: Apply %s it", r.Stream, r.Outcome)
		}
	}
}
