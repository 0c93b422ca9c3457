// Package agent is the domain of agentd: the agent directory, the session
// state of each agent, and the use cases Login, Logout, Pause and Unpause.
//
// The package talks to nothing outside the process. It declares the small
// interfaces it needs (queue membership, device state, session store) and
// the edge packages ami, ari and events satisfy them.
package agent
