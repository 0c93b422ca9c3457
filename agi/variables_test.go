package agi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setVariablesSession runs SetVariables with vars in a FastAGI session and
// returns the Asterisk side of the session and SetVariables' result.
func setVariablesSession(t *testing.T, vars []Variable) (*fakeAsterisk, <-chan error) {
	t.Helper()
	errs := make(chan error, 1)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		errs <- s.SetVariables(ctx, vars)
		return nil
	})
	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	return f, errs
}

func TestSetVariablesOneMSet(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"B", ""}, {"C", "Local/7@agent-phones/n"}, {"D", "1796414400"}})
	assert.Equal(t, []string{"EXEC", "MSet", "A=READY,B=,C=Local/7@agent-phones/n,D=1796414400"}, f.mustCommand())
	f.write("200 result=0\n")
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestSetVariablesNotPlain(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"NAME", "Lunch, long"}, {"B", "5"}, {"Q", `say "hi" \o/`},
		{"SP", "two words"}, {"ES", "Almuerzo con café"}, {"EQ", "a=b"}, {"PAREN", "x(y"}, {"TICK", "it's"},
		{"DOLLAR", "${EXTEN}"}})
	assert.Equal(t, []string{"EXEC", "MSet", "A=READY,B=5,SP=two words,ES=Almuerzo con café,EQ=a=b"}, f.mustCommand())
	f.write("200 result=0\n")
	for _, want := range [][]string{
		{"SET", "VARIABLE", "NAME", "Lunch, long"},
		{"SET", "VARIABLE", "Q", `say "hi" \o/`},
		{"SET", "VARIABLE", "PAREN", "x(y"},
		{"SET", "VARIABLE", "TICK", "it's"},
		{"SET", "VARIABLE", "DOLLAR", "${EXTEN}"},
	} {
		assert.Equal(t, want, f.mustCommand())
		f.write("200 result=1\n")
	}
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestSetVariablesSingle(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"NAME", "Lunch, long"}})
	assert.Equal(t, []string{"SET", "VARIABLE", "A", "READY"}, f.mustCommand(), "one plain variable needs no MSet")
	f.write("200 result=1\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "NAME", "Lunch, long"}, f.mustCommand())
	f.write("200 result=1\n")
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestSetVariablesWithoutMSet(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"B", "5"}})
	assert.Equal(t, []string{"EXEC", "MSet", "A=READY,B=5"}, f.mustCommand())
	f.write("200 result=-2\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "A", "READY"}, f.mustCommand())
	f.write("200 result=1\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "B", "5"}, f.mustCommand())
	f.write("200 result=1\n")
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestSetVariablesDeadChannel(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"B", "5"}})
	assert.Equal(t, []string{"EXEC", "MSet", "A=READY,B=5"}, f.mustCommand())
	f.write("511 Command Not Permitted on a dead channel or intercept routine\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "A", "READY"}, f.mustCommand(), "SET VARIABLE runs on a dead channel")
	f.write("200 result=1\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "B", "5"}, f.mustCommand())
	f.write("511 Command Not Permitted on a dead channel or intercept routine\n")
	f.requireClosed()
	require.ErrorIs(t, <-errs, ErrDeadChannel)
}

func TestSetVariablesSessionResult(t *testing.T) {
	outcomes := make(chan string, 1)
	_, addr := probeServer(t, func(c *Config) {
		c.OnSession = func(_, outcome string, _ time.Duration) { outcomes <- outcome }
	}, func(ctx context.Context, s *Session) error {
		return s.SetVariables(ctx, []Variable{{VarResult, ResultError}, {VarError, "not_logged_in"}})
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"EXEC", "MSet", "AGENT_RESULT=ERROR,AGENT_ERROR=not_logged_in"}, f.mustCommand())
	f.write("200 result=0\n")
	f.requireClosed()
	assert.Equal(t, ResultError, <-outcomes, "AGENT_RESULT set by MSet is the session's outcome")
}

func TestSetVariablesBackslash(t *testing.T) {
	f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"B", `back\slash`}, {"C", `trailing\`}, {"D", "5"}})
	assert.Equal(t, []string{"EXEC", "MSet", "A=READY,D=5"}, f.mustCommand(), "MSet drops backslashes")
	f.write("200 result=0\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "B", `back\slash`}, f.mustCommand())
	f.write("200 result=1\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "C", `trailing\`}, f.mustCommand())
	f.write("200 result=1\n")
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestSetVariablesLongValues(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 5000) }
	f, errs := setVariablesSession(t, []Variable{{"A", long("a")}, {"B", long("b")}, {"C", "5"}})
	// A and B do not fit in one command line: B and C go in one MSet, and
	// A, alone in its batch, by SET VARIABLE.
	assert.Equal(t, []string{"EXEC", "MSet", "B=" + long("b") + ",C=5"}, f.mustCommand())
	f.write("200 result=0\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "A", long("a")}, f.mustCommand())
	f.write("200 result=1\n")
	f.requireClosed()
	require.NoError(t, <-errs)
}

func TestMSetBatchesFit(t *testing.T) {
	vars := []Variable{
		{"A", strings.Repeat("a", msetRoom-2)}, // "A=" plus the value fills a line
		{"B", "1"}, {"C", "2"},
		{"D", strings.Repeat("d", msetRoom)}, // too long for any batch
		{"E", "3"},
	}

	batches := msetBatches(vars)

	require.Len(t, batches, 4)
	assert.Equal(t, []Variable{vars[0]}, batches[0])
	assert.Equal(t, []Variable{vars[1], vars[2]}, batches[1])
	assert.Equal(t, []Variable{vars[3]}, batches[2])
	assert.Equal(t, []Variable{vars[4]}, batches[3])
	for _, b := range batches[:2] {
		var pairs []string
		for _, v := range b {
			pairs = append(pairs, v.Name+"="+v.Value)
		}
		_, err := formatCommand("EXEC", []string{"MSet", strings.Join(pairs, ",")})
		assert.NoError(t, err, "the MSet command of a batch fits in a line")
	}
}

func TestSetVariablesExecRejected(t *testing.T) {
	for _, response := range []string{
		"510 Invalid or unknown command\n",
		"520-Invalid command syntax.  Proper usage follows:\nUsage: EXEC <application> <options>\n520 End of proper usage.\n",
	} {
		f, errs := setVariablesSession(t, []Variable{{"A", "READY"}, {"B", "5"}})
		assert.Equal(t, []string{"EXEC", "MSet", "A=READY,B=5"}, f.mustCommand())
		f.write(response)
		for _, want := range [][]string{{"SET", "VARIABLE", "A", "READY"}, {"SET", "VARIABLE", "B", "5"}} {
			assert.Equal(t, want, f.mustCommand(), "after %q", response)
			f.write("200 result=1\n")
		}
		f.requireClosed()
		require.NoError(t, <-errs)
	}
}
