package alerting

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AlertRecord is the message of one transition on the alerts stream,
// subject alerts.<state>.<alertname>.
type AlertRecord struct {
	ID    string    `json:"id"`
	From  State     `json:"from"`
	To    State     `json:"to"`
	At    time.Time `json:"at"`
	Alert *Alert    `json:"alert"`
}

// AlertSubject is the subject of a transition's record.
func AlertSubject(t Transition) string { return "alerts." + string(t.To) + "." + t.Alert.Rule }

// JetStreamSink publishes alert records to the ALERTS stream, with
// Nats-Msg-Id set to the [TransitionID] so that instances seeing the same
// input store each transition once.
type JetStreamSink struct {
	JS      jetstream.JetStream
	Timeout time.Duration // per publish; default 2s
}

// PublishAlert implements AlertSink.
func (j *JetStreamSink) PublishAlert(ctx context.Context, t Transition) error {
	id := TransitionID(t)
	data, err := json.Marshal(AlertRecord{ID: id, From: t.From, To: t.To, At: t.At.UTC(), Alert: t.Alert})
	if err != nil {
		return err
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := nats.NewMsg(AlertSubject(t))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, id)
	_, err = j.JS.PublishMsg(ctx, msg)
	return err
}
