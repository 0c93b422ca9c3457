// Package events stores agent sessions durably and publishes every session
// change as an event on NATS JetStream.
//
// A Store implements agent.Store. Each committed change is written to a
// JetStream key-value bucket (key = agent id, value = the session as JSON)
// and published once on the subject <prefix>.<agent_id>.<type> of a
// stream. The event id is also sent as the Nats-Msg-Id header, so the
// stream drops a second copy of the same event within its duplicate window.
//
// With no NATS URL the Store runs an embedded nats-server with JetStream
// under the data directory. With URLs it connects to an external server or
// cluster and reconnects forever.
//
// While NATS is unreachable, Commit appends each change to an on-disk
// outbox (fsync before it returns) and a background flusher stores and
// publishes the entries once NATS is back, in order for each agent. New
// changes queue behind the outbox, so events of one agent keep the order
// of their commits. The
// payload is documented in docs/events.md and docs/events.schema.json.
package events
