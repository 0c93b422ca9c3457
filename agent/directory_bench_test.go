package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/contactcenter/agentd/agent"
	"golang.org/x/crypto/bcrypt"
)

// BenchmarkParseDirectory parses a directory of 10,000 agents, the size of
// the memory scenario of make bench; see B/op for the memory it takes.
func BenchmarkParseDirectory(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bench"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("pauses:\n  - {id: \"7\", name: Lunch, type: recreational}\nagents:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "  - id: \"b%d\"\n    name: Bench %d\n    interface: Local/b%d@agent-phones/n\n    password_hash: \"%s\"\n    queues: [{name: bench-%02d, penalty: 1}]\n", i, i, i, hash, i%46+1)
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := agent.ParseDirectory("directory.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
