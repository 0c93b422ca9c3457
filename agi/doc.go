// Package agi is agentd's FastAGI server: dialplan calls
// AGI(agi://host:4573/<script>,<args>) and agentd serves the request from
// its agent sessions, setting channel variables such as AGENT_STATE and
// AGENT_RESULT.
//
// The protocol layer parses from bytes and touches no connection:
// ParseHeader reads the agi_* environment that Asterisk sends first, and
// ParseResponse reads the reply to one command ("200 result=1 (value)",
// "510 …", "511 …" or the multi-line "520-" usage block). The stream reader
// built on the same parsers skips the unsolicited "HANGUP" line that
// Asterisk writes when the channel hangs up, so every command stays paired
// with its own response.
//
// Server accepts connections from an allow list, caps concurrent sessions,
// bounds every wait with a deadline and routes each session by the script
// name in agi_network_script to a Handler. NewServer registers the agent
// scripts (agent_state, agent_login, agent_logout, agent_pause,
// agent_unpause); Handle adds others. A Session sends one command at a time
// and waits for its response, because res_agi reads commands with fgets on
// a stdio stream after poll() and a pipelined command can stall.
//
// The facts about Asterisk relied on here come from res/res_agi.c, which is
// the same in Asterisk 20, 21 and 22.
package agi
