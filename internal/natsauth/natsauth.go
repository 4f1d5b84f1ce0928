// Package natsauth holds the NATS users of a jetmon deployment as data: one
// role per component, each with the least subject permissions that component
// needs. The embedded server of `jetmon up` uses them, and a NATS cluster's
// configuration can be written from them.
//
// The guarantees, checked against a real server by the tests:
//   - only [Operator] can create, update, purge or delete streams (other than
//     the key-value buckets and the partitioned input a component owns),
//     delete messages, or delete other components' state;
//   - [Producer] can publish events and nothing else: not the types only the
//     pipeline emits (aggregated windows, monitoring control, threshold
//     events — see [PipelineOnlySubjects]), not alerts, not dead letters;
//   - [Reader] can read every stream (tail, dead-letter listing, replay with
//     ordered consumers) and change nothing;
//   - [Aggregator], [AlertManager] and [Traces] consume their input and
//     publish their output only;
//   - [Console] reads like a [Reader], and may only add silences, publish
//     dead letters again (events, never the pipeline-only types) and delete
//     dead letters.
package natsauth

import (
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// Role names a component's user.
type Role string

// The roles.
const (
	Operator     Role = "operator"
	Producer     Role = "producer"
	Aggregator   Role = "aggregator"
	AlertManager Role = "alertmanager"
	Reader       Role = "reader"
	// Traces is the trace assembly runtime (pkg/tracing): it consumes every
	// event family and stores assembled traces in the TRACES stream.
	Traces Role = "traces"
	// Console is the web console's user (`jetmon console`).
	Console Role = "console"
	// Guest is the role of an anonymous client of `jetmon up`: a Reader that
	// may also publish what a Producer may.
	Guest Role = "guest"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{Operator, Producer, Aggregator, AlertManager, Reader, Console, Guest, Traces}
}

// eventSubjects are the event families' subjects.
var eventSubjects = []string{"performance.>", "health.>", "validation.>", "system.>", "monitoring.>"}

// PipelineOnlySubjects are the event subjects only the pipeline publishes:
// aggregated windows (the aggregator), threshold events (the alert manager)
// and monitoring control (an operator). An application's own reports, such as
// its breaker's monitoring.config.changed, stay open to producers.
var PipelineOnlySubjects = []string{
	"performance.metric.aggregated", "performance.metric.aggregated.>",
	"health.threshold.>",
	"monitoring.mode.>", "monitoring.enabled", "monitoring.enabled.>",
	"monitoring.disabled", "monitoring.disabled.>", "monitoring.sampled", "monitoring.sampled.>",
}

// destructive are the JetStream API calls that lose data or change a stream.
var destructive = []string{
	"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
	"$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.RESTORE.>",
	"$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>", "$JS.API.META.>", "$JS.API.ACCOUNT.>", "$JS.API.SERVER.>",
}

// readAPI are the JetStream API calls that read streams through consumers.
var readAPI = []string{
	"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
	"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
	"$JS.API.CONSUMER.CREATE.*", "$JS.API.CONSUMER.CREATE.*.>", "$JS.API.CONSUMER.INFO.*.*",
	"$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.MSG.NEXT.*.*",
	"$JS.FC.>",
}

// consumeAPI adds what a durable consumer needs: acks and removing its own
// consumers (a rewind recreates one).
var consumeAPI = append([]string{
	"$JS.ACK.>", "$JS.API.CONSUMER.DURABLE.CREATE.*.*", "$JS.API.CONSUMER.DELETE.*.*",
	"$JS.API.CONSUMER.UNPIN.*.*", "$JS.API.CONSUMER.PAUSE.*.*",
}, readAPI...)

// kv returns what a component needs to own the key-value bucket name.
func kv(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "$KV."+n+".>", "$JS.API.STREAM.CREATE.KV_"+n, "$JS.API.STREAM.UPDATE.KV_"+n, "$JS.API.STREAM.INFO.KV_"+n)
	}
	return out
}

// objectStore returns what a component needs to own the object store bucket
// name: its chunks and metadata, and purging the chunks a Put replaces.
func objectStore(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "$O."+n+".>", "$JS.API.STREAM.CREATE.OBJ_"+n, "$JS.API.STREAM.UPDATE.OBJ_"+n,
			"$JS.API.STREAM.INFO.OBJ_"+n, "$JS.API.STREAM.PURGE.OBJ_"+n)
	}
	return out
}

// replies is every client's inbox: request replies and publish acks.
var replies = []string{"_INBOX.>"}

// Permissions returns the permissions of role; nil (everything) for Operator.
func Permissions(role Role) *server.Permissions {
	producer := &server.SubjectPermission{Allow: eventSubjects, Deny: PipelineOnlySubjects}
	switch role {
	case Operator:
		return nil
	case Producer:
		return &server.Permissions{Publish: producer, Subscribe: &server.SubjectPermission{Allow: replies}}
	case Reader, Guest:
		pub := &server.SubjectPermission{Allow: readAPI, Deny: destructive}
		if role == Guest {
			pub.Allow = append(append([]string{}, readAPI...), eventSubjects...)
			pub.Deny = append(append([]string{}, destructive...), PipelineOnlySubjects...)
		}
		return &server.Permissions{
			Publish:   pub,
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}
	case Console:
		// Writes: a silence (the alert managers' bucket), a dead letter
		// published again (an event) or deleted. Nothing else changes.
		allow := append(append([]string{"$KV.jetmon_silences.>", "$JS.API.STREAM.MSG.DELETE.DEADLETTER"}, readAPI...), eventSubjects...)
		var deny []string
		for _, d := range destructive {
			if d != "$JS.API.STREAM.MSG.DELETE.>" { // the allow list names the one stream
				deny = append(deny, d)
			}
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: allow, Deny: append(deny, PipelineOnlySubjects...)},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}
	case Aggregator:
		allow := append([]string{"performance.metric.aggregated.>", "windows.>", "deadletter.>", "$JS.API.STREAM.CREATE.AGGREGATE_INPUT"}, consumeAPI...)
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: append(allow, kv("jetmon_aggregators", "jetmon_aggregator_handoff", "jetmon_aggregator_owners")...)},
			Subscribe: &server.SubjectPermission{Allow: append([]string{"performance.>"}, replies...)},
		}
	case AlertManager:
		allow := append([]string{"alerts.>", "health.threshold.>", "deadletter.>"}, consumeAPI...)
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: append(append(allow, kv("jetmon_alerts", "jetmon_silences", "jetmon_nflog")...),
				objectStore("jetmon_patterns")...)},
			Subscribe: &server.SubjectPermission{Allow: append([]string{">"}, replies...)},
		}
	case Traces:
		allow := append([]string{"traces.assembled.>", "deadletter.>", "$JS.API.STREAM.CREATE.TRACES", "$JS.API.STREAM.UPDATE.TRACES"}, consumeAPI...)
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: append(allow, kv("jetmon_traces")...)},
			Subscribe: &server.SubjectPermission{Allow: append(append([]string{"traces.assembled.>"}, eventSubjects...), replies...)},
		}
	}
	return &server.Permissions{Publish: &server.SubjectPermission{Deny: []string{">"}}, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}
}

// User returns the server's user for role with password, which the server
// keeps only as a bcrypt hash. The server's no-auth user (the guest) must
// have an empty password: the server checks a client without credentials
// against the stored password itself, which a hash would fail.
// Cost is the bcrypt cost (bcrypt.DefaultCost in production; every login
// pays it, so tests may take bcrypt.MinCost).
func User(role Role, password string, cost int) *server.User {
	return &server.User{Username: string(role), Password: Hash(password, cost), Permissions: Permissions(role)}
}

// Hash returns password as a bcrypt hash the server accepts in place of the
// password (cost: bcrypt's; a random machine-made password can take
// bcrypt.MinCost). An empty password stays empty.
func Hash(password string, cost int) string {
	if password == "" {
		return ""
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil { // longer than bcrypt's 72 bytes: refuse every login rather than store it plain
		return "$2a$10$invalid.password.longer.than.72.bytes.refused......."
	}
	return string(h)
}
