package agi

import (
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseHeaderAsterisk22(t *testing.T) {
	data, err := os.ReadFile("testdata/header-asterisk-22.10.1.txt")
	require.NoError(t, err)

	h, err := ParseHeader(data)
	require.NoError(t, err)

	assert.Equal(t, "agent_state", h.Script())
	assert.Equal(t, "Local/agi@agent-phones-00000018;1", h.Channel())
	assert.Equal(t, "1796415647.48", h.UniqueID())
	assert.Empty(t, h.Get("agi_accountcode"))
	assert.Equal(t, "yes", h.Get("agi_network"))
	assert.Len(t, h.Vars, 22)
	assert.Equal(t, []string{"1001"}, h.Args)
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Header
	}{
		{
			name: "args in order",
			in:   "agi_network_script: agent_pause\nagi_arg_1: 1001\nagi_arg_2: 5\n\n",
			want: Header{Vars: map[string]string{"agi_network_script": "agent_pause"}, Args: []string{"1001", "5"}},
		},
		{
			name: "CRLF line ends",
			in:   "agi_network: yes\r\nagi_arg_1: 1001\r\n\r\n",
			want: Header{Vars: map[string]string{"agi_network": "yes"}, Args: []string{"1001"}},
		},
		{
			name: "empty values",
			in:   "agi_accountcode: \nagi_dnid:\nagi_arg_1: \n\n",
			want: Header{Vars: map[string]string{"agi_accountcode": "", "agi_dnid": ""}, Args: []string{""}},
		},
		{
			name: "value with colons and spaces",
			in:   "agi_request: agi://127.0.0.1:4573/agent_state?agent=1 2\n\n",
			want: Header{Vars: map[string]string{"agi_request": "agi://127.0.0.1:4573/agent_state?agent=1 2"}},
		},
		{
			name: "only arguments",
			in:   "agi_arg_1: x\n\n",
			want: Header{Args: []string{"x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, h)
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		message string
	}{
		{"empty input", "", "no blank line"},
		{"blank line first", "\n", "blank line before any variable"},
		{"no blank line", "agi_network: yes\n", "no blank line"},
		{"no line end", "agi_network: yes", "no line end"},
		{"bytes after blank line", "agi_network: yes\n\n200 result=1\n", "after the blank line"},
		{"no colon", "agi_network yes\n\n", "has no ':'"},
		{"no agi prefix", "network: yes\n\n", "is not agi_"},
		{"bare prefix", "agi_: yes\n\n", "is not agi_"},
		{"space in name", "agi_net work: yes\n\n", "is not agi_"},
		{"no space after colon", "agi_network:yes\n\n", "no space after the colon"},
		{"repeated name", "agi_network: yes\nagi_network: no\n\n", "sent twice"},
		{"argument gap", "agi_arg_2: x\n\n", "expected agi_arg_1"},
		{"argument zero", "agi_arg_0: x\n\n", "expected agi_arg_1"},
		{"argument leading zero", "agi_arg_01: x\n\n", "expected agi_arg_1"},
		{"argument repeated", "agi_arg_1: x\nagi_arg_1: y\n\n", "expected agi_arg_2"},
		{"binary garbage", "\x00\xff\xfe garbage\n\n", "has no ':'"},
		{"too many arguments", manyArgs(maxHeaderArgs + 1), "more than 127 arguments"},
		{"too many lines", manyVars(maxHeaderLines + 1), "more than 512 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader([]byte(tt.in))
			require.ErrorIs(t, err, ErrInvalidHeader)
			assert.ErrorContains(t, err, tt.message)
		})
	}
}

func TestParseHeaderLimits(t *testing.T) {
	h, err := ParseHeader([]byte(manyArgs(maxHeaderArgs)))
	require.NoError(t, err)
	assert.Len(t, h.Args, maxHeaderArgs)
}

func manyArgs(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString("agi_arg_" + strconv.Itoa(i) + ": a\n")
	}
	return b.String() + "\n"
}

func manyVars(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString("agi_v" + strconv.Itoa(i) + ": a\n")
	}
	return b.String() + "\n"
}

func TestHeaderRequest(t *testing.T) {
	tests := []struct {
		name   string
		script string
		args   []string
		want   Request
	}{
		{"plain", "agent_state", []string{"1001"}, Request{Script: "agent_state", Query: url.Values{}, Args: []string{"1001"}}},
		{"query", "agent_state?agent=1001", nil, Request{Script: "agent_state", Query: url.Values{"agent": {"1001"}}}},
		{"slashes trimmed", "/agent_state/", nil, Request{Script: "agent_state", Query: url.Values{}}},
		{"no script", "", nil, Request{Script: "", Query: url.Values{}}},
		{"escaped query", "agent_pause?agent=1001&pause=a%20b", nil, Request{Script: "agent_pause", Query: url.Values{"agent": {"1001"}, "pause": {"a b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Vars: map[string]string{}, Args: tt.args}
			if tt.script != "" {
				h.Vars[headerNetworkScript] = tt.script
			}
			req, err := h.Request()
			require.NoError(t, err)
			assert.Equal(t, tt.want, req)
		})
	}
}

func TestHeaderRequestInvalidQuery(t *testing.T) {
	h := Header{Vars: map[string]string{headerNetworkScript: "agent_state?agent=1001&x=%zz"}}

	req, err := h.Request()

	require.Error(t, err)
	assert.Equal(t, "agent_state", req.Script)
	assert.Equal(t, "1001", req.Query.Get("agent"))
}

func TestRequestArg(t *testing.T) {
	req := Request{Query: url.Values{"agent": {"2002"}, "pause": {"7"}}, Args: []string{"1001", ""}}

	assert.Equal(t, "1001", req.Arg(0, ParamAgent), "argument wins over the query")
	assert.Equal(t, "7", req.Arg(1, ParamPause), "empty argument falls back to the query")
	assert.Empty(t, req.Arg(2, "missing"))
}
