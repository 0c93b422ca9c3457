// Package ari is agentd's client for the Asterisk REST Interface (ARI) of
// Asterisk 20 to 22.
//
// Client sends REST requests: device states of ARI-controlled devices
// (Stasis:agent-1001), system information, application subscriptions,
// channels, endpoints and global variables. Every call takes a context and
// is bounded by Config.RequestTimeout. Failures come back as *Error for an
// HTTP error status, wrapped in ErrUnavailable when Asterisk cannot be
// reached or responds with 503.
//
// EventStream keeps the /ari/events websocket of one Stasis application
// open. It reconnects with capped exponential backoff, calls OnConnect
// after every connect so the caller can subscribe again and resync, and
// passes each event to OnEvent in arrival order. Event types this package
// does not know are passed on like any other.
//
// DeviceStates adapts Client to agent.DeviceStates.
package ari
