package testbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests below run against the sandbox and skip without it (see Require).
// They use the queues bench-47 to bench-50 so that a ringall call cannot
// reach members that other packages' tests add to sales, support, billing or
// demo at the same time.

// waitTimeout bounds each wait for Asterisk. Reaching it fails the test.
const waitTimeout = 20 * time.Second

func TestAMIUsersHaveConfiguredRights(t *testing.T) {
	bench := Require(t)

	agentd, err := dialAMI(bench.AMIAddr, bench.AMIUser, bench.AMISecret, false)
	require.NoError(t, err)
	defer agentd.close()

	events, err := agentd.doList("QueueStatus", amiHeader{"Queue", "sales"})
	require.NoError(t, err, "agentd may run QueueStatus")
	assert.Equal(t, "QueueParams", events[0]["Event"])

	_, err = agentd.do("Originate", amiHeader{"Channel", "Local/1@agent-phones/n"}, amiHeader{"Application", "Wait"})
	var failed *actionError
	require.ErrorAs(t, err, &failed, "agentd must not originate")
	assert.Equal(t, "Permission denied", failed.message)

	_, err = dialAMI(bench.AMIAddr, bench.AMIUser, "wrong-secret", false)
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "Authentication failed", failed.message)
}

func TestCLIShowsConfiguredQueues(t *testing.T) {
	bench := Require(t)

	sales := bench.CLI(t, "queue show sales")
	assert.Contains(t, sales, "sales has")
	assert.Contains(t, sales, "'ringall' strategy")

	assert.Contains(t, bench.CLI(t, "queue show bench-01"), "bench-01 has")
	assert.Contains(t, bench.CLI(t, "queue show bench-50"), "bench-50 has")
	assert.Contains(t, bench.CLI(t, "queue show bench-51"), "No such queue")
}

func TestDeviceStateReadsARIState(t *testing.T) {
	bench := Require(t)
	device := "Stasis:" + UniqueName("agent-tb")
	slashDevice := device + "/line"

	assert.Equal(t, "UNKNOWN", bench.DeviceState(t, device))

	putDeviceState(t, bench, device, "INUSE")
	putDeviceState(t, bench, slashDevice, "RINGING")

	assert.Equal(t, "INUSE", bench.DeviceState(t, device))
	assert.Equal(t, "RINGING", bench.DeviceState(t, slashDevice))
}

// putDeviceState sets a Stasis: device with ARI PUT /deviceStates/{name}.
func putDeviceState(t *testing.T, bench *Bench, device, state string) {
	t.Helper()
	target := bench.ARIURL + "/ari/deviceStates/" + url.PathEscape(device) + "?deviceState=" + state
	request, err := http.NewRequestWithContext(t.Context(), http.MethodPut, target, nil)
	require.NoError(t, err)
	request.SetBasicAuth(bench.ARIUser, bench.ARIPassword)

	response, err := bench.http.Do(request)
	require.NoError(t, err)
	require.NoError(t, response.Body.Close())
	require.Equal(t, http.StatusNoContent, response.StatusCode)

	t.Cleanup(func() { deleteDeviceState(t, bench, device) })
}

func deleteDeviceState(t *testing.T, bench *Bench, device string) {
	request, err := http.NewRequestWithContext(context.Background(), http.MethodDelete,
		bench.ARIURL+"/ari/deviceStates/"+url.PathEscape(device), nil)
	require.NoError(t, err)
	request.SetBasicAuth(bench.ARIUser, bench.ARIPassword)
	response, err := bench.http.Do(request)
	require.NoError(t, err)
	assert.NoError(t, response.Body.Close())
}

func TestQueueMembersFollowAddPauseRemove(t *testing.T) {
	bench := Require(t)
	const queue = "bench-47"
	name := UniqueName("tb")
	member := QueueMember{
		Interface:      "Local/" + name + "@agent-phones/n",
		MemberName:     "Agent " + name,
		StateInterface: "Stasis:agent-" + name,
		Penalty:        2,
	}
	cursor := bench.QueueLog(t)

	bench.AddMember(t, queue, member)
	_, err := bench.action("QueuePause", amiHeader{"Interface", member.Interface}, amiHeader{"Paused", "true"},
		amiHeader{"Queue", queue}, amiHeader{"Reason", "Lunch break"})
	require.NoError(t, err)

	got := findMember(t, bench.QueueMembers(t, queue), member.Interface)
	assert.Equal(t, member.MemberName, got.MemberName)
	assert.Equal(t, member.StateInterface, got.StateInterface)
	assert.Equal(t, 2, got.Penalty)
	assert.True(t, got.Paused)
	assert.Equal(t, "Lunch break", got.PausedReason)

	bench.RemoveMember(t, queue, member.Interface)
	for _, m := range bench.QueueMembers(t, queue) {
		assert.NotEqual(t, member.Interface, m.Interface, "member still in %s after RemoveMember", queue)
	}

	lines := linesOf(cursor.Lines(t), queue, member.Interface, member.MemberName)
	require.Len(t, lines, 3, "queue_log lines: %+v", lines)
	assert.Equal(t, QueueLogLine{Time: lines[0].Time, CallID: "MANAGER", Queue: queue, Agent: member.Interface,
		Event: "ADDMEMBER", Data: []string{""}}, lines[0])
	assert.Equal(t, QueueLogLine{Time: lines[1].Time, CallID: "NONE", Queue: queue, Agent: member.MemberName,
		Event: "PAUSE", Data: []string{"Lunch break"}}, lines[1])
	assert.Equal(t, QueueLogLine{Time: lines[2].Time, CallID: "MANAGER", Queue: queue, Agent: member.Interface,
		Event: "REMOVEMEMBER", Data: []string{""}}, lines[2])
}

func TestRemoveMemberAcceptsMissingMember(t *testing.T) {
	bench := Require(t)

	bench.RemoveMember(t, "bench-47", "Local/"+UniqueName("tb")+"@agent-phones/n")
}

func findMember(t *testing.T, members []QueueMember, iface string) QueueMember {
	t.Helper()
	for _, m := range members {
		if m.Interface == iface {
			return m
		}
	}
	require.FailNow(t, "member not found", "%s not in %+v", iface, members)
	return QueueMember{}
}

// linesOf returns the queue_log lines of queue that name one of agents,
// because the queue_log is shared with every test running at the same time.
func linesOf(lines []QueueLogLine, queue string, agents ...string) []QueueLogLine {
	var matching []QueueLogLine
	for _, line := range lines {
		for _, agent := range agents {
			if line.Queue == queue && line.Agent == agent {
				matching = append(matching, line)
				break
			}
		}
	}
	return matching
}

func TestQueueCallConnectsMember(t *testing.T) {
	bench := Require(t)
	const queue = "bench-48"
	name := UniqueName("tb")
	member := QueueMember{Interface: "Local/" + name + "@agent-phones/n", MemberName: "Agent " + name}
	events := bench.ListenEvents(t)
	cursor := bench.QueueLog(t)
	bench.AddMember(t, queue, member)
	t.Cleanup(func() {
		bench.Hangup(t, "/^Local\\/"+name+"@agent-phones-/")
	})

	actionID := bench.Originate(t, OriginateRequest{
		Channel:     "Local/" + queue + "@queue-callers/n",
		Application: "Wait",
		Data:        "30",
		Async:       true,
	})

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	joined := events.WaitEvent(t, ctx, func(e map[string]string) bool {
		return e["Event"] == "QueueCallerJoin" && e["Queue"] == queue
	})
	connected := events.WaitEvent(t, ctx, func(e map[string]string) bool {
		return e["Event"] == "AgentConnect" && e["Interface"] == member.Interface
	})
	originated := events.WaitEvent(t, ctx, func(e map[string]string) bool {
		return e["Event"] == "OriginateResponse" && e["ActionID"] == actionID
	})

	assert.Equal(t, queue, connected["Queue"])
	assert.Equal(t, member.MemberName, connected["MemberName"])
	assert.Equal(t, joined["Uniqueid"], connected["Uniqueid"], "AgentConnect names the caller that joined")
	assert.Equal(t, "Success", originated["Response"])

	require.Eventually(t, func() bool {
		return len(linesOf(cursor.Lines(t), queue, member.MemberName)) > 0
	}, waitTimeout, 50*time.Millisecond, "no CONNECT line in queue_log")
	connect := linesOf(cursor.Lines(t), queue, member.MemberName)[0]
	assert.Equal(t, "CONNECT", connect.Event)
	assert.Equal(t, joined["Uniqueid"], connect.CallID)
}

func TestQueueSkipsMemberWithBusyStateInterface(t *testing.T) {
	bench := Require(t)
	const queue = "bench-49"
	busyName, freeName := UniqueName("tb"), UniqueName("tb")
	busy := QueueMember{Interface: "Local/" + busyName + "@agent-phones/n", StateInterface: "Stasis:agent-" + busyName}
	free := QueueMember{Interface: "Local/" + freeName + "@agent-phones/n", StateInterface: "Stasis:agent-" + freeName}
	putDeviceState(t, bench, busy.StateInterface, "INUSE")
	putDeviceState(t, bench, free.StateInterface, "NOT_INUSE")
	events := bench.ListenEvents(t)
	bench.AddMember(t, queue, busy)
	bench.AddMember(t, queue, free)
	t.Cleanup(func() {
		bench.Hangup(t, "/^Local\\/"+freeName+"@agent-phones-/")
	})

	bench.Originate(t, OriginateRequest{
		Channel:     "Local/" + queue + "@queue-callers/n",
		Application: "Wait",
		Data:        "30",
		Async:       true,
	})

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	events.WaitEvent(t, ctx, func(e map[string]string) bool {
		return e["Event"] == "AgentConnect" && e["Interface"] == free.Interface
	})
	// With strategy ringall Asterisk sends AgentCalled for every member it
	// rings before any of them answers, so a call to the busy member would
	// be buffered by now.
	for _, e := range events.Events() {
		if e["Event"] == "AgentCalled" {
			assert.NotEqual(t, busy.Interface, e["Interface"], "ringinuse=no must skip a member whose state is INUSE")
		}
	}
}

// fakeAGIServer is a FastAGI server on 127.0.0.1 that serves each
// connection by setting channel variables with SET VARIABLE, then closing.
type fakeAGIServer struct {
	listener net.Listener
	// variables holds, per script name, the variables to set in order.
	variables map[string][][2]string
	requests  chan agiRequest
	wg        sync.WaitGroup
}

// agiRequest is what Asterisk sent in the FastAGI header.
type agiRequest struct {
	script string
	args   []string
}

func startFakeAGIServer(t *testing.T, variables map[string][][2]string) *fakeAGIServer {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server := &fakeAGIServer{listener: listener, variables: variables, requests: make(chan agiRequest, 16)}

	server.wg.Add(1)
	go server.serve(t)
	t.Cleanup(func() {
		assert.NoError(t, listener.Close())
		server.wg.Wait()
	})
	return server
}

func (s *fakeAGIServer) serve(t *testing.T) {
	defer s.wg.Done()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			if err := s.answer(conn); err != nil {
				t.Errorf("fake FastAGI server: %v", err)
			}
		}()
	}
}

func (s *fakeAGIServer) answer(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		return err
	}
	reader := bufio.NewReader(conn)
	request, err := readAGIHeader(reader)
	if err != nil {
		return err
	}
	s.requests <- request

	for _, variable := range s.variables[request.script] {
		command := fmt.Sprintf("SET VARIABLE %s \"%s\"\n", variable[0], variable[1])
		if _, err := conn.Write([]byte(command)); err != nil {
			return err
		}
		reply, err := reader.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(reply, "200 result=1") {
			return fmt.Errorf("%w: %q answered %q", errUnexpectedAGIReply, strings.TrimSpace(command), reply)
		}
	}
	return nil
}

var errUnexpectedAGIReply = errors.New("unexpected AGI reply")

func readAGIHeader(reader *bufio.Reader) (agiRequest, error) {
	var request agiRequest
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			return request, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return request, nil
		}
		key, value, _ := strings.Cut(line, ": ")
		switch {
		case key == "agi_network_script":
			request.script = value
		case strings.HasPrefix(key, "agi_arg_"):
			request.args = append(request.args, value)
		}
	}
}

func (s *fakeAGIServer) waitRequest(t *testing.T, ctx context.Context) agiRequest {
	t.Helper()
	select {
	case request := <-s.requests:
		return request
	case <-ctx.Done():
		require.FailNow(t, "no FastAGI connection from Asterisk")
		return agiRequest{}
	}
}

func TestAGIStateReportsVariables(t *testing.T) {
	bench := Require(t)
	agent := UniqueName("agent")
	variables := [][2]string{
		{"AGENT_STATE", "paused"},
		{"AGENT_PAUSE_ID", "7"},
		{"AGENT_PAUSE_NAME", "Lunch break"},
		{"AGENT_PAUSE_TYPE", "productive"},
		{"AGENT_STATE_SINCE", "2026-01-02T03:04:05Z"},
		{"AGENT_INTERFACE", "Local/1001@agent-phones/n"},
	}
	server := startFakeAGIServer(t, map[string][][2]string{"agent_state": variables})
	events := bench.ListenEvents(t)

	originateAGI(t, bench, "state", agent, server.listener.Addr().String())

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	request := server.waitRequest(t, ctx)
	assert.Equal(t, agiRequest{script: "agent_state", args: []string{agent}}, request)

	event := waitUserEvent(t, ctx, events, "AgentState", agent)
	assert.Equal(t, "SUCCESS", event["AGISTATUS"])
	for _, variable := range variables {
		assert.Equal(t, variable[1], event[variable[0]], variable[0])
	}
}

func TestAGIActionsReportResult(t *testing.T) {
	bench := Require(t)
	results := [][2]string{{"AGENT_RESULT", "error"}, {"AGENT_ERROR", "not_logged_in"}}
	server := startFakeAGIServer(t, map[string][][2]string{
		"agent_login": results, "agent_logout": results, "agent_pause": results, "agent_unpause": results,
	})
	events := bench.ListenEvents(t)

	for _, action := range []string{"login", "logout", "pause", "unpause"} {
		t.Run(action, func(t *testing.T) {
			agent := UniqueName("agent")
			originateAGI(t, bench, action, agent, server.listener.Addr().String())

			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			wantArgs := []string{agent}
			if action == "pause" || action == "unpause" {
				wantArgs = append(wantArgs, "7")
			}
			assert.Equal(t, agiRequest{script: "agent_" + action, args: wantArgs}, server.waitRequest(t, ctx))

			event := waitUserEvent(t, ctx, events, "AgentResult", agent)
			assert.Equal(t, action, event["ACTION"])
			assert.Equal(t, "SUCCESS", event["AGISTATUS"])
			assert.Equal(t, "error", event["AGENT_RESULT"])
			assert.Equal(t, "not_logged_in", event["AGENT_ERROR"])
		})
	}
}

func TestAGIWithoutServerReportsFailure(t *testing.T) {
	bench := Require(t)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := listener.Addr().String()
	require.NoError(t, listener.Close())
	events := bench.ListenEvents(t)
	agent := UniqueName("agent")

	originateAGI(t, bench, "login", agent, closedAddr)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	event := waitUserEvent(t, ctx, events, "AgentResult", agent)
	assert.Equal(t, "FAILURE", event["AGISTATUS"])
	assert.Empty(t, event["AGENT_RESULT"])
}

// originateAGI runs extension exten of the agentd-agi context for agent,
// with the FastAGI server at agiAddr.
func originateAGI(t *testing.T, bench *Bench, exten, agent, agiAddr string) {
	t.Helper()
	bench.Originate(t, OriginateRequest{
		Channel:   "Local/agi@agent-phones/n",
		Context:   "agentd-agi",
		Exten:     exten,
		Variables: map[string]string{"AGENT": agent, "AGENTD_AGI_ADDR": agiAddr, "PAUSE_ID": "7"},
		Async:     true,
	})
}

func waitUserEvent(t *testing.T, ctx context.Context, events *EventListener, name, agent string) map[string]string {
	t.Helper()
	return events.WaitEvent(t, ctx, func(e map[string]string) bool {
		return e["Event"] == "UserEvent" && e["UserEvent"] == name && e["AGENT"] == agent
	})
}

func TestSetvarSetsGlobal(t *testing.T) {
	bench := Require(t)
	name := strings.ToUpper(UniqueName("TESTBENCH_"))

	assert.Empty(t, bench.Getvar(t, name))
	bench.Setvar(t, name, "value with spaces")

	assert.Equal(t, "value with spaces", bench.Getvar(t, name))
	assert.Contains(t, bench.CLI(t, "dialplan show globals"), name+"=value with spaces")
}

func TestGetvarReadsDefaultAGIAddress(t *testing.T) {
	bench := Require(t)

	// Tests running at the same time may change the global, so only its
	// presence is checked.
	assert.NotEmpty(t, bench.Getvar(t, "AGENTD_AGI_ADDR"))
}

func TestHangupAcceptsMissingChannel(t *testing.T) {
	bench := Require(t)

	bench.Hangup(t, "Local/"+UniqueName("tb")+"@agent-phones-00000000;1")
}
