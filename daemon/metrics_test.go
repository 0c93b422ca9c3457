package daemon_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/internal/testbench"
)

// scrape reads /metrics into metric families.
func scrape(t *testing.T, e *e2eDaemon) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(e.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// value returns the value of the sample of family with exactly labels.
func value(t *testing.T, families map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	t.Helper()
	f, ok := families[family]
	require.True(t, ok, "metric %s missing", family)
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", family, labels)
	return 0
}

func TestMetricsAfterRequests(t *testing.T) {
	bench := testbench.Require(t)
	a := newAgent("sales", "support")
	e := startDaemon(t, bench, t.TempDir(), []e2eAgent{a})
	// Let the start-up reconciliation finish, because it sets device
	// states too.
	require.Eventually(t, func() bool {
		return value(t, scrape(t, e), "agentd_reconcile_runs_total", map[string]string{"result": "ok"}) >= 1
	}, 10*time.Second, 10*time.Millisecond)

	steps := []struct {
		route string
		form  url.Values
		code  int
	}{
		{"/api/v1/asterisk_login/", nil, http.StatusOK},
		{"/api/v1/asterisk_pause/", url.Values{"pause_id": {"7"}}, http.StatusOK},
		{"/api/v1/asterisk_unpause/", url.Values{"pause_id": {"8"}}, http.StatusConflict},
	}
	for _, s := range steps {
		code, body := e.post(t, a, s.route, s.form)
		require.Equal(t, s.code, code, body)
	}
	// One FastAGI agent_state session run by the sandbox dialplan.
	events := bench.ListenEvents(t)
	bench.Originate(t, testbench.OriginateRequest{
		Channel: "Local/" + testbench.UniqueName("m") + "@agent-phones/n", Context: "agentd-agi", Exten: "state",
		Variables: map[string]string{"AGENT": a.ID, "AGENTD_AGI_ADDR": e.d.AGIAddr().String()}, Async: true,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	state := events.WaitEvent(t, ctx, func(ev map[string]string) bool {
		return ev["UserEvent"] == "AgentState" && ev["AGENT"] == a.ID
	})
	require.Equal(t, "PAUSED", state["AGENT_STATE"])

	// The session is counted when the server closes it, just after the
	// dialplan went on to send the UserEvent.
	var m map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		m = scrape(t, e)
		_, ok := m["agentd_agi_sessions_total"]
		return ok
	}, 5*time.Second, 10*time.Millisecond)
	assert.InDelta(t, 1, value(t, m, "agentd_http_requests_total", map[string]string{"route": "/api/v1/asterisk_login/", "code": "200"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_http_requests_total", map[string]string{"route": "/api/v1/asterisk_unpause/", "code": "409"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_http_request_duration_seconds", map[string]string{"route": "/api/v1/asterisk_pause/"}), 0)
	assert.InDelta(t, 2, value(t, m, "agentd_ami_actions_total", map[string]string{"action": "QueueAdd", "result": "success"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_ami_actions_total", map[string]string{"action": "QueuePause", "result": "success"}), 0)
	assert.InDelta(t, 2, value(t, m, "agentd_ari_requests_total", map[string]string{"request": "PUT deviceStates", "result": "success"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_agents", map[string]string{"state": "PAUSED"}), 0)
	assert.InDelta(t, 0, value(t, m, "agentd_agents", map[string]string{"state": "READY"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_connection_up", map[string]string{"connection": "ami"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_connection_up", map[string]string{"connection": "ari"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_connection_up", map[string]string{"connection": "nats"}), 0)
	assert.InDelta(t, 2, value(t, m, "agentd_events_published_total", nil), 0)
	assert.InDelta(t, 0, value(t, m, "agentd_outbox_depth", nil), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_agi_sessions_total", map[string]string{"script": "agent_state", "result": "OK"}), 0)
	assert.InDelta(t, 1, value(t, m, "agentd_agi_session_duration_seconds", map[string]string{"script": "agent_state"}), 0)

	code, body := e.post(t, a, "/api/v1/asterisk_logout/", nil)
	require.Equal(t, http.StatusOK, code, body)
}
