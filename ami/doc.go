// Package ami is agentd's client for the Asterisk Manager Interface (AMI).
//
// The protocol layer (Message, Reader, Message.Encode) parses and encodes
// AMI frames from bytes: "Key: Value" lines ended by CRLF, with a blank line
// ending each message. Messages keep repeated keys and their order.
//
// Client keeps one persistent, logged-in TCP connection to Asterisk. It
// reconnects with capped exponential backoff, correlates responses with
// actions by ActionID so that many actions can be in flight at once, and
// passes unsolicited events to one handler goroutine. Pool adds
// action-only clients beside it and sends each action through the one with
// the fewest actions in flight.
//
// Queues implements agent.Queues with the app_queue actions QueueAdd,
// QueueRemove and QueuePause. Its error mapping relies on the message texts
// of apps/app_queue.c, which are the same in Asterisk 20, 21 and 22.
package ami
