package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// DefaultMemberNameTemplate builds member names as OMniLeads writes them:
// the agent id, an underscore and the display name.
const DefaultMemberNameTemplate = "{id}_{name}"

// Default names of the built-in pauses.
const (
	DefaultAfterCallPauseName  = "ACW"
	DefaultSupervisorPauseName = "Supervision"
)

var (
	// Agent ids become NATS subject tokens and KV keys, so they are limited
	// to characters valid in both.
	validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// An interface is TECH/resource; separators used by AMI, dialplan
	// arguments and queue_log are not allowed.
	validInterface = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*/[^\s,|;]+$`)
	validQueue     = regexp.MustCompile(`^[^\s,|;]{1,80}$`)
	notAlnum       = regexp.MustCompile(`[^A-Za-z0-9]+`)
)

// Directory lists the agents and the pause catalog. It is immutable once
// loaded; a reload builds a new one.
type Directory struct {
	agents        map[string]Agent
	byInterface   map[string]string
	byChannelBase map[string]string
	pauses        map[string]Pause
}

// directoryFile is the YAML layout of the directory file.
type directoryFile struct {
	MemberNameTemplate string        `yaml:"member_name_template"`
	BuiltinPauses      builtinPauses `yaml:"builtin_pauses"`
	Pauses             []pauseEntry  `yaml:"pauses"`
	Agents             []agentEntry  `yaml:"agents"`
}

type builtinPauses struct {
	AfterCall  string `yaml:"after_call"`
	Supervisor string `yaml:"supervisor"`
}

type pauseEntry struct {
	ID   scalar `yaml:"id"`
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

type agentEntry struct {
	ID           scalar       `yaml:"id"`
	Name         string       `yaml:"name"`
	Interface    string       `yaml:"interface"`
	PasswordHash string       `yaml:"password_hash"`
	Queues       []queueEntry `yaml:"queues"`
}

type queueEntry struct {
	Name    string      `yaml:"name"`
	Penalty wholeNumber `yaml:"penalty"`
}

// wholeNumber is an integer of the directory file. yaml.v3 would store a
// penalty of 1.5 as 1 without an error.
type wholeNumber int

func (w *wholeNumber) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return fmt.Errorf("line %d: %q is not an integer: write a whole number, such as 0 or 2", n.Line, n.Value)
	}
	var i int
	if err := n.Decode(&i); err != nil {
		return err
	}
	*w = wholeNumber(i)
	return nil
}

// scalar keeps an id exactly as written: YAML would read 00 or 007 as the
// number 0 or 7, and pause "00" must stay distinct from pause "0".
type scalar string

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a single value", n.Line)
	}
	*s = scalar(n.Value)
	return nil
}

// LoadDirectory reads and validates the directory file at path.
func LoadDirectory(path string) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return ParseDirectory(path, data)
}

// ParseDirectory parses and validates a directory. name is used in error
// messages. All problems are reported together, each with its line.
func ParseDirectory(name string, data []byte) (*Directory, error) {
	var f directoryFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // an empty file is an empty directory
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d, err := buildDirectory(name, &f, lineIndex{})
	if err == nil {
		return d, nil
	}
	// The lines are only needed to report problems. A node tree of the
	// file costs several times its size in memory (tens of MB for 10,000
	// agents), so it is parsed only then.
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // already decoded above
	_, err = buildDirectory(name, &f, newLineIndex(&root))
	return nil, err
}

// buildDirectory validates f and builds its directory. lines gives the
// line numbers of the problems; without a tree every problem is on line 1.
func buildDirectory(name string, f *directoryFile, lines lineIndex) (*Directory, error) {
	v := &validator{file: name}
	d := &Directory{agents: map[string]Agent{}, byInterface: map[string]string{}, byChannelBase: map[string]string{}, pauses: map[string]Pause{}}
	d.addBuiltinPauses(f.BuiltinPauses)
	d.addPauses(f.Pauses, lines, v)
	d.addAgents(*f, lines, v)
	if err := v.err(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Directory) addBuiltinPauses(b builtinPauses) {
	after, super := b.AfterCall, b.Supervisor
	if after == "" {
		after = DefaultAfterCallPauseName
	}
	if super == "" {
		super = DefaultSupervisorPauseName
	}
	d.pauses[PauseAfterCall] = Pause{ID: PauseAfterCall, Name: after, Type: PauseProductive}
	d.pauses[PauseSupervisor] = Pause{ID: PauseSupervisor, Name: super, Type: PauseProductive}
}

func (d *Directory) addPauses(entries []pauseEntry, lines lineIndex, v *validator) {
	for i, e := range entries {
		line := lines.item("pauses", i)
		id := string(e.ID)
		switch {
		case !validID.MatchString(id):
			v.add(line, "pause id %q is invalid: use 1 to 64 letters, digits, '_' or '-'", id)
			continue
		case id == PauseAfterCall || id == PauseSupervisor:
			v.add(line, "pause id %q is built in: rename it under builtin_pauses instead of listing it", id)
			continue
		case d.hasPause(id):
			v.add(line, "pause id %q is listed twice: give each pause its own id", id)
			continue
		}
		if strings.TrimSpace(e.Name) == "" {
			v.add(line, "pause %q has no name: add name", id)
		}
		typ := PauseType(e.Type)
		if e.Type == "" {
			typ = PauseProductive
		}
		if typ != PauseProductive && typ != PauseRecreational {
			v.add(line, "pause %q has type %q: use productive or recreational", id, e.Type)
		}
		d.pauses[id] = Pause{ID: id, Name: e.Name, Type: typ}
	}
}

func (d *Directory) hasPause(id string) bool {
	_, ok := d.pauses[id]
	return ok
}

func (d *Directory) addAgents(f directoryFile, lines lineIndex, v *validator) {
	tmpl := f.MemberNameTemplate
	if tmpl == "" {
		tmpl = DefaultMemberNameTemplate
	}
	if !strings.Contains(tmpl, "{id}") {
		v.add(lines.key("member_name_template"), "member_name_template %q lacks {id}: member names must be unique per agent", tmpl)
	}
	for i, e := range f.Agents {
		line := lines.item("agents", i)
		a, ok := d.parseAgent(e, tmpl, line, v)
		if !ok {
			continue
		}
		if other, dup := d.byInterface[a.Interface]; dup && a.Interface != "" {
			v.add(line, "agent %q uses interface %s, already used by agent %q: give each agent its own interface", a.ID, a.Interface, other)
			continue
		}
		d.agents[a.ID] = a
		d.byInterface[a.Interface] = a.ID
		d.byChannelBase[channelBase(a.Interface)] = a.ID
	}
}

func (d *Directory) parseAgent(e agentEntry, tmpl string, line int, v *validator) (Agent, bool) {
	id := string(e.ID)
	if !validID.MatchString(id) {
		v.add(line, "agent id %q is invalid: use 1 to 64 letters, digits, '_' or '-'", id)
		return Agent{}, false
	}
	if _, dup := d.agents[id]; dup {
		v.add(line, "agent id %q is listed twice: give each agent its own id", id)
		return Agent{}, false
	}
	if strings.TrimSpace(e.Name) == "" {
		v.add(line, "agent %q has no name: add name", id)
	}
	if !validInterface.MatchString(e.Interface) {
		v.add(line, "agent %q has interface %q: write TECH/resource, such as PJSIP/1001", id, e.Interface)
	}
	if e.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(e.PasswordHash)); err != nil {
			v.add(line, "agent %q has a password_hash that is not a bcrypt hash (%v): generate one with 'agentd hash-password'", id, err)
		}
	}
	queues := parseQueues(id, e.Queues, line, v)
	a := Agent{
		ID:           id,
		Name:         e.Name,
		Interface:    e.Interface,
		MemberName:   memberName(tmpl, id, e.Name),
		Queues:       queues,
		PasswordHash: e.PasswordHash,
	}
	// Problems found above are recorded in v and reject the whole file. The
	// agent is still kept, so duplicates of its id and interface are found.
	return a, true
}

func parseQueues(agentID string, entries []queueEntry, line int, v *validator) []QueueRef {
	seen := map[string]bool{}
	queues := make([]QueueRef, 0, len(entries))
	for _, q := range entries {
		switch {
		case !validQueue.MatchString(q.Name):
			v.add(line, "agent %q has queue name %q: use a name without spaces, ',', ';' or '|'", agentID, q.Name)
		case seen[q.Name]:
			v.add(line, "agent %q lists queue %q twice: keep one entry", agentID, q.Name)
		case q.Penalty < 0:
			v.add(line, "agent %q has penalty %d in queue %q: use 0 or more", agentID, q.Penalty, q.Name)
		}
		seen[q.Name] = true
		queues = append(queues, QueueRef{Name: q.Name, Penalty: int(q.Penalty)})
	}
	return queues
}

// memberName fills the template; characters other than ASCII letters and
// digits in the values become '-', as OMniLeads writes member names.
func memberName(tmpl, id, name string) string {
	return strings.NewReplacer(
		"{id}", notAlnum.ReplaceAllString(id, "-"),
		"{name}", notAlnum.ReplaceAllString(name, "-"),
	).Replace(tmpl)
}

// Agent returns the agent with this id.
func (d *Directory) Agent(id string) (Agent, bool) {
	a, ok := d.agents[id]
	return a, ok
}

// AgentByInterface returns the agent whose Asterisk interface is iface.
func (d *Directory) AgentByInterface(iface string) (Agent, bool) {
	id, ok := d.byInterface[iface]
	if !ok {
		return Agent{}, false
	}
	return d.Agent(id)
}

// Agents returns every agent, sorted by id.
func (d *Directory) Agents() []Agent {
	out := make([]Agent, 0, len(d.agents))
	for _, a := range d.agents {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Pause returns the pause with this id from the catalog.
func (d *Directory) Pause(id string) (Pause, bool) {
	p, ok := d.pauses[id]
	return p, ok
}

// PauseOrUnknown returns the pause with this id, or a pause named after
// its id when the catalog no longer lists it.
func (d *Directory) PauseOrUnknown(id string) Pause {
	if p, ok := d.pauses[id]; ok {
		return p
	}
	return Pause{ID: id, Name: id, Type: PauseProductive}
}

// Pauses returns the pause catalog, built-in pauses included, sorted by id.
func (d *Directory) Pauses() []Pause {
	out := make([]Pause, 0, len(d.pauses))
	for _, p := range d.pauses {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// validator collects directory problems with their lines.
type validator struct {
	file     string
	problems []error
}

func (v *validator) add(line int, format string, args ...any) {
	v.problems = append(v.problems, fmt.Errorf("%s:%d: %s", v.file, line, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	return errors.Join(v.problems...)
}

// lineIndex finds the lines of top-level keys and of sequence items.
type lineIndex struct {
	root *yaml.Node
}

func newLineIndex(doc *yaml.Node) lineIndex {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return lineIndex{root: doc.Content[0]}
	}
	return lineIndex{}
}

func (l lineIndex) value(key string) *yaml.Node {
	if l.root == nil || l.root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(l.root.Content); i += 2 {
		if l.root.Content[i].Value == key {
			return l.root.Content[i+1]
		}
	}
	return nil
}

func (l lineIndex) key(key string) int {
	if n := l.value(key); n != nil {
		return n.Line
	}
	return 1
}

func (l lineIndex) item(key string, i int) int {
	n := l.value(key)
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return l.key(key)
	}
	return n.Content[i].Line
}

// agentByChannelBase finds the agent whose interface, without its dial
// options, is base: Local/1001@agent-phones/n is dialled as channels named
// Local/1001@agent-phones-<id>;1 and ;2.
func (d *Directory) agentByChannelBase(base string) (Agent, bool) {
	id, ok := d.byChannelBase[base]
	if !ok {
		return Agent{}, false
	}
	return d.Agent(id)
}

// channelBase returns the part of an interface that its channel names
// start with: Local/1001@ctx/n gives Local/1001@ctx.
func channelBase(iface string) string {
	tech, resource, _ := strings.Cut(iface, "/")
	if strings.EqualFold(tech, "Local") {
		resource, _, _ = strings.Cut(resource, "/")
	}
	return tech + "/" + resource
}

// Len returns the number of agents.
func (d *Directory) Len() int {
	return len(d.agents)
}
