package daemon_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const openAPIPath = "../docs/openapi.yaml"

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIDoc is docs/openapi.yaml decoded into maps, with YAML aliases
// expanded, as a JSON decoder would return it.
type openAPIDoc map[string]any

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	var raw any
	require.NoError(t, yaml.Unmarshal(data, &raw))
	// A round trip through JSON gives the types jsonschema expects and
	// fails on a key that is not a string, such as an unquoted status code.
	js, err := json.Marshal(raw)
	require.NoError(t, err, "openapi.yaml must be representable as JSON")
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	require.NoError(t, err)
	return openAPIDoc(doc.(map[string]any))
}

// routes returns each operation as "METHOD path".
func (doc openAPIDoc) routes() []string {
	var out []string
	for path, item := range doc["paths"].(map[string]any) {
		for _, method := range openAPIMethods {
			if _, ok := item.(map[string]any)[method]; ok {
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// lookup follows a JSON pointer such as "#/components/schemas/Error".
func (doc openAPIDoc) lookup(t *testing.T, pointer string) any {
	t.Helper()
	var node any = map[string]any(doc)
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "#/"), "/") {
		token = strings.NewReplacer("~1", "/", "~0", "~").Replace(token)
		m, ok := node.(map[string]any)
		require.True(t, ok, "%s: %q is not inside an object", pointer, token)
		node, ok = m[token]
		require.True(t, ok, "%s: no %q", pointer, token)
	}
	return node
}

// response returns the response object of an operation for a status, with
// a $ref followed, and its JSON pointer. ok is false when the operation
// does not document the status.
func (doc openAPIDoc) response(t *testing.T, method, path string, status int) (resp map[string]any, pointer string, ok bool) {
	t.Helper()
	pointer = "#/paths/" + strings.ReplaceAll(path, "/", "~1") + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(status)
	responses := doc.lookup(t, "#/paths/"+strings.ReplaceAll(path, "/", "~1")+"/"+strings.ToLower(method)+"/responses").(map[string]any)
	r, ok := responses[strconv.Itoa(status)]
	if !ok {
		return nil, "", false
	}
	resp = r.(map[string]any)
	if ref, isRef := resp["$ref"].(string); isRef {
		pointer = ref
		resp = doc.lookup(t, ref).(map[string]any)
	}
	return resp, pointer, true
}

// errorCodes returns the error codes that a response's schema allows: the
// enum that narrows error.code in its allOf.
func errorCodes(resp map[string]any) []string {
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	allOf, _ := schema["allOf"].([]any)
	var codes []string
	for _, part := range allOf {
		enum := dig(part, "properties", "error", "properties", "code", "enum")
		for _, c := range asSlice(enum) {
			codes = append(codes, c.(string))
		}
	}
	return codes
}

func dig(node any, keys ...string) any {
	for _, k := range keys {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[k]
	}
	return node
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0"}`)
	doc := loadOpenAPI(t)

	served := e.d.Routes()

	require.NotEmpty(t, served)
	assert.Contains(t, served, "POST /api/v1/asterisk_login/")
	assert.Contains(t, served, "POST /api/v1/asterisk_login")
	assert.Contains(t, served, "GET /readyz")
	described := doc.routes()
	for _, r := range served {
		assert.Contains(t, described, r, "served route missing from openapi.yaml")
	}
	for _, r := range described {
		assert.Contains(t, served, r, "openapi.yaml describes a route that is not served")
	}
}

// httpapiErrorCodes reads statusByCode in httpapi/errors.go and returns
// each error code with its HTTP status. The constants are resolved from
// httpapi/errors.go and agent/errors.go, so a code added there without
// documentation fails the test that uses this.
func httpapiErrorCodes(t *testing.T) map[string]int {
	t.Helper()
	consts := stringConstants(t, "../agent/errors.go", "agent.")
	for name, value := range stringConstants(t, "../httpapi/errors.go", "") {
		consts[name] = value
	}
	// Resolve httpapi constants defined as agent constants.
	for name, value := range consts {
		if v, ok := consts[value]; ok && strings.HasPrefix(value, "agent.") {
			consts[name] = v
		}
	}
	statusByName := map[string]int{}
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			statusByName["Status"+strings.NewReplacer(" ", "", "-", "", "'", "").Replace(text)] = code
		}
	}

	file, err := parser.ParseFile(token.NewFileSet(), "../httpapi/errors.go", nil, 0)
	require.NoError(t, err)
	table := map[string]int{}
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "statusByCode" {
			return true
		}
		for _, elt := range spec.Values[0].(*ast.CompositeLit).Elts {
			kv := elt.(*ast.KeyValueExpr)
			key := kv.Key.(*ast.Ident).Name
			code, ok := consts[key]
			require.True(t, ok, "statusByCode key %s is not a string constant of httpapi or agent", key)
			statusName := kv.Value.(*ast.SelectorExpr).Sel.Name
			status, ok := statusByName[statusName]
			require.True(t, ok, "statusByCode value http.%s is not a status known by its text", statusName)
			table[code] = status
		}
		return false
	})
	require.NotEmpty(t, table, "statusByCode not found in httpapi/errors.go")
	return table
}

// stringConstants returns the constants of a Go file that are string
// literals or selectors such as agent.CodeTimeout. A selector's value is
// its source text, for the caller to resolve. prefix is put before each
// name.
func stringConstants(t *testing.T, path, prefix string) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	require.NoError(t, err)
	out := map[string]string{}
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				switch v := vs.Values[i].(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(v.Value); err == nil {
						out[prefix+name.Name] = s
					}
				case *ast.SelectorExpr:
					out[prefix+name.Name] = v.X.(*ast.Ident).Name + "." + v.Sel.Name
				}
			}
		}
	}
	return out
}

func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	doc := loadOpenAPI(t)
	codes := httpapiErrorCodes(t)
	require.Len(t, codes, 15)

	var enum []string
	for _, c := range asSlice(doc.lookup(t, "#/components/schemas/ErrorCode/enum")) {
		enum = append(enum, c.(string))
	}
	for code := range codes {
		assert.Contains(t, enum, code, "error code missing from the ErrorCode enum")
	}
	assert.Len(t, enum, len(codes), "the ErrorCode enum has codes that httpapi does not send")

	// Each response that narrows error.code must sit under the status that
	// httpapi sends for that code.
	documented := map[string]bool{}
	for _, route := range doc.routes() {
		method, path, _ := strings.Cut(route, " ")
		for status := 400; status < 600; status++ {
			resp, pointer, ok := doc.response(t, method, path, status)
			if !ok {
				continue
			}
			for _, code := range errorCodes(resp) {
				documented[code] = true
				assert.Equal(t, codes[code], status, "%s %s: code %s documented under %d (%s)", method, path, code, status, pointer)
			}
		}
	}
	for code := range codes {
		if code == "not_found" {
			continue // unknown paths have no operation to document it under
		}
		assert.True(t, documented[code], "no operation documents a response with code %s", code)
	}
}

// liveCase is one request sent to agentd and checked against openapi.yaml.
type liveCase struct {
	name        string
	method      string
	path        string
	header      http.Header
	body        string
	credentials bool
	status      int
	code        string // error code, empty for success
}

func TestOpenAPIMatchesResponses(t *testing.T) {
	a := newAgent("sales")
	e := startOffline(t, []e2eAgent{a}, `http: {listen: "127.0.0.1:0"}`)
	doc := loadOpenAPI(t)
	compiler := jsonschema.NewCompiler()
	require.NoError(t, compiler.AddResource("openapi.json", map[string]any(doc)))
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	jsonType := http.Header{"Content-Type": {"application/json"}}

	cases := []liveCase{
		{name: "no credentials", method: "POST", path: "/api/v1/asterisk_login/", status: 401, code: "unauthenticated"},
		{name: "Asterisk down", method: "POST", path: "/api/v1/asterisk_login", credentials: true, status: 503, code: "asterisk_unavailable"},
		{name: "logout of an offline agent", method: "POST", path: "/api/v1/asterisk_logout/", credentials: true, status: 200},
		{name: "pause without pause_id", method: "POST", path: "/api/v1/asterisk_pause/", credentials: true, status: 400, code: "invalid_request"},
		{name: "unknown pause", method: "POST", path: "/api/v1/asterisk_pause", header: jsonType, body: `{"pause_id": 99}`, credentials: true, status: 422, code: "unknown_pause"},
		{name: "unpause when logged out", method: "POST", path: "/api/v1/asterisk_unpause/", header: form, body: "pause_id=7", credentials: true, status: 409, code: "not_logged_in"},
		{name: "text body", method: "POST", path: "/api/v1/asterisk_unpause", header: http.Header{"Content-Type": {"text/plain"}}, body: "7", credentials: true, status: 415, code: "unsupported_media_type"},
		{name: "body too large", method: "POST", path: "/api/v1/asterisk_pause/", header: form, body: "pause_id=" + strings.Repeat("7", 70000), credentials: true, status: 413, code: "request_too_large"},
		{name: "other agent in body", method: "POST", path: "/api/v1/asterisk_logout", header: jsonType, body: `{"agent_id": "someone-else"}`, credentials: true, status: 403, code: "forbidden"},
		{name: "OPTIONS without CORS", method: "OPTIONS", path: "/api/v1/asterisk_logout/", status: 405, code: "method_not_allowed"},
		{name: "Spanish messages", method: "POST", path: "/api/v1/asterisk_pause/", header: http.Header{"Accept-Language": {"es-AR,es;q=0.9"}}, credentials: true, status: 400, code: "invalid_request"},
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
		{name: "readyz while Asterisk is down", method: "GET", path: "/readyz", status: 503},
		{name: "metrics", method: "GET", path: "/metrics", status: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := sendLive(t, e, a, c)

			require.Equal(t, c.status, resp.StatusCode, string(body))
			spec, pointer, ok := doc.response(t, c.method, c.path, c.status)
			require.True(t, ok, "openapi.yaml documents no %d for %s %s", c.status, c.method, c.path)
			for name := range asMap(spec["headers"]) {
				assert.NotEmpty(t, resp.Header.Get(name), "header %s documented in %s", name, pointer)
			}
			media, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
			content := asMap(spec["content"])
			require.Contains(t, content, media, "media type documented in %s", pointer)
			if c.code != "" {
				assert.Contains(t, errorCodes(spec), c.code, pointer)
			}
			if media == "application/json" {
				schema, err := compiler.Compile("openapi.json" + pointer + "/content/application~1json/schema")
				require.NoError(t, err)
				value, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
				require.NoError(t, err)
				assert.NoError(t, schema.Validate(value), "body %s against %s", body, pointer)
			}
		})
	}
}

func sendLive(t *testing.T, e *e2eDaemon, a e2eAgent, c liveCase) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), c.method, e.base+c.path, strings.NewReader(c.body))
	require.NoError(t, err)
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.credentials {
		req.SetBasicAuth(a.ID, a.Password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func TestOpenAPIRequestIDAndLanguage(t *testing.T) {
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0"}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.base+"/api/v1/asterisk_login/", nil)
	require.NoError(t, err)
	req.Header.Set("X-Request-Id", "webphone-42")
	req.Header.Set("Accept-Language", "fr-FR, es;q=0.3")

	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	assert.Equal(t, "webphone-42", resp.Header.Get("X-Request-Id"))
	assert.Equal(t, "es-419", resp.Header.Get("Content-Language"))
}

func TestOpenAPIPreflightWithCORS(t *testing.T) {
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0", cors: {allowed_origins: ["https://phone.example.com"]}}`)
	doc := loadOpenAPI(t)
	spec, pointer, ok := doc.response(t, http.MethodOptions, "/api/v1/asterisk_pause/", http.StatusNoContent)
	require.True(t, ok)
	options := func(origin string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, e.base+"/api/v1/asterisk_pause/", nil)
		require.NoError(t, err)
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}

	allowed := options("https://phone.example.com")
	other := options("https://other.example.com")
	none := options("")

	assert.Equal(t, http.StatusNoContent, allowed.StatusCode)
	for name, header := range asMap(spec["headers"]) {
		want := dig(header, "schema", "const")
		if want == nil {
			want = "https://phone.example.com"
		}
		assert.Equal(t, want, allowed.Header.Get(name), "header %s documented in %s", name, pointer)
	}
	assert.Equal(t, http.StatusNoContent, other.StatusCode, "with CORS on, every OPTIONS gets 204")
	assert.Empty(t, other.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, http.StatusNoContent, none.StatusCode, "with CORS on, every OPTIONS gets 204")
	assert.Empty(t, none.Header.Get("Access-Control-Allow-Origin"))
}

var (
	// documentedMetric matches a row of the metrics table in docs/metrics.md.
	documentedMetric = regexp.MustCompile("(?m)^\\| `(agentd_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")
	// sourceMetric matches a metric name in a Go string literal.
	sourceMetric = regexp.MustCompile(`"(agentd_[a-z0-9_]+)"`)
	metricName   = regexp.MustCompile(`^agentd_[a-z][a-z0-9_]*[a-z0-9]$`)
)

func TestMetricsMatchDocs(t *testing.T) {
	page, err := os.ReadFile("../docs/metrics.md")
	require.NoError(t, err)
	documented := map[string]string{}
	for _, m := range documentedMetric.FindAllStringSubmatch(string(page), -1) {
		documented[m[1]] = m[2]
	}
	var inSource []string
	for _, file := range []string{"metrics.go", "collector.go"} {
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range sourceMetric.FindAllStringSubmatch(string(src), -1) {
			inSource = append(inSource, m[1])
		}
	}

	require.NotEmpty(t, inSource)
	for _, name := range inSource {
		assert.Contains(t, documented, name, "metric missing from docs/metrics.md")
	}
	for name, typ := range documented {
		assert.Contains(t, inSource, name, "docs/metrics.md lists a metric that the code does not register")
		assert.Regexp(t, metricName, name)
		switch typ {
		case "counter":
			assert.True(t, strings.HasSuffix(name, "_total"), "counter %s must end in _total", name)
		case "histogram":
			assert.True(t, strings.HasSuffix(name, "_seconds"), "histogram %s must measure seconds and end in _seconds", name)
		case "gauge":
			assert.False(t, strings.HasSuffix(name, "_total"), "gauge %s must not end in _total", name)
		}
	}

	// Every metric is exported with the documented type once each path has
	// run: an API request, a FastAGI session and the AMI actions.
	ami := startQueueAMI(t, false)
	a := newAgent("sales")
	e := startLifecycle(t, &lifecycleSetup{amiAddr: ami.addr(), ariURL: startDeviceStateARI(t).URL, agi: true, agents: []e2eAgent{a}})
	code, body := e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	_, err = dialAGIScript(t, e.d.AGIAddr().String(), "agent_state", a.ID).variables()
	require.NoError(t, err)
	families := scrape(t, e)
	require.Eventually(t, func() bool {
		families = scrape(t, e)
		_, ok := families["agentd_agi_sessions_total"]
		return ok
	}, 5*time.Second, 10*time.Millisecond, "the FastAGI session was not counted")
	for name, typ := range documented {
		f, ok := families[name]
		if !assert.True(t, ok, "metric %s not exported", name) {
			continue
		}
		assert.Equal(t, typ, strings.ToLower(f.GetType().String()), name)
	}
	for name := range families {
		if strings.HasPrefix(name, "agentd_") {
			assert.Contains(t, documented, name, "exported metric missing from docs/metrics.md")
		}
	}
}
