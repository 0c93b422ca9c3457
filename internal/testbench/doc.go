// Package testbench connects tests to the real Asterisk 22 sandbox that
// scripts/asterisk-sandbox.sh runs in a chroot on 127.0.0.1, and inspects it.
//
// Require reads the environment printed by "asterisk-sandbox.sh env" and
// skips the test when the sandbox is not configured, unless
// AGENTD_REQUIRE_ASTERISK=1 (set by "make test"), which fails it instead.
//
// The helpers check what Asterisk did without the project's own ami and ari
// packages: a minimal AMI client on net and bufio, plain net/http for ARI,
// "asterisk -rx" inside the chroot for the CLI, and the queue_log file on the
// host. A test that passes therefore shows the behaviour of Asterisk, not the
// agreement of two copies of the same client code.
//
// Asterisk is shared by every test package that runs at the same time, so a
// test uses its own interfaces and device names (see UniqueName) and removes
// its members when it ends.
package testbench
