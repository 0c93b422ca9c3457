package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeConfig decodes data into cfg and adds a problem for each unknown
// key and each value of the wrong type. yaml.v3 goes on decoding after
// those and leaves such a value as it was, so the other keys are still
// checked. It returns false after a syntax error, which stops the parser.
func decodeConfig(cfg *Config, data []byte, p *problems) bool {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		p.addSyntaxError(err)
		return false
	}
	p.root = &root

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	var typeErr *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF): // an empty file takes the defaults
	case errors.As(err, &typeErr):
		nodes := newNodeIndex(&root)
		for _, entry := range typeErr.Errors {
			p.addDecodeError(entry, nodes)
		}
	default:
		p.addSyntaxError(err)
		return false
	}
	checkWholeNumbers(&root, reflect.TypeFor[Config](), "", p)
	return true
}

// checkWholeNumbers adds a problem for each number with a fraction or an
// exponent, such as 3.5 or 1e1, given for an integer key: yaml.v3 would
// store 3.5 as 3 without an error. t is the Go type that n
// decodes into and key its dotted name.
func checkWholeNumbers(n *yaml.Node, t reflect.Type, key string, p *problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
		checkWholeNumbers(n.Content[0], t, key, p)
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, ok := yamlField(t, n.Content[i].Value); ok {
				checkWholeNumbers(n.Content[i+1], f.Type, joinKey(key, n.Content[i].Value), p)
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkWholeNumbers(n.Content[i+1], t.Elem(), joinKey(key, n.Content[i].Value), p)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, item := range n.Content {
			checkWholeNumbers(item, t.Elem(), fmt.Sprintf("%s[%d]", key, i), p)
		}
	case n.Kind == yaml.ScalarNode && n.Tag == "!!float" && isIntegerKind(t.Kind()) && t != durationType:
		// A duration has its own message from the duration decoder.
		p.addLine(n.Line, key, "%s %s is not an integer: write it as one, such as %d", key, n.Value, int64(math.Round(parseFloat(n.Value))))
	}
}

// yamlField returns the field of struct t that the YAML key name decodes
// into, as yaml.v3 matches them: the name in the yaml tag, or else the
// field name in lower case.
func yamlField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := yamlName(f)
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == name || tag == "" && strings.ToLower(f.Name) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func isIntegerKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func (p *problems) addSyntaxError(err error) {
	p.syntaxError = true
	if m := yamlSyntaxPattern.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.addLine(line, "", "invalid YAML: %s: check the indentation and the quotes on this line and the lines after it", m[2])
		return
	}
	p.addLine(0, "", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// addDecodeError adds one entry of a yaml.TypeError in the terms of the
// file: the key, the value and the fix, without Go type names.
func (p *problems) addDecodeError(entry string, nodes *nodeIndex) {
	m := yamlEntryPattern.FindStringSubmatch(entry)
	if m == nil {
		p.addLine(0, "", "%s: check it against docs/configuration.md", yamlGoTypePattern.ReplaceAllString(entry, ""))
		return
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]

	if s := yamlUnknownPattern.FindStringSubmatch(text); s != nil {
		section, found := nodes.keyIn(line, s[1])
		hint := ""
		if found {
			hint = suggestKey(section, s[1])
		}
		p.addLine(line, joinKey(section, s[1]), "unknown key %q%s: check the spelling against docs/configuration.md%s",
			s[1], underSection(section, found), hint)
		return
	}
	if s := yamlDuplicatePattern.FindStringSubmatch(text); s != nil {
		name, _ := strconv.Unquote(s[1])
		section, found := nodes.keyIn(line, name)
		if found {
			// yaml.v3 decodes nothing of a mapping with a duplicate key.
			p.undecoded[section] = true
		}
		p.addLine(line, joinKey(section, name), "duplicate key %q%s, first at line %s: keep one", name, underSection(section, found), s[2])
		return
	}
	if s := yamlSetTwicePattern.FindStringSubmatch(text); s != nil {
		section, found := nodes.keyIn(line, s[1])
		p.addLine(line, joinKey(section, s[1]), "duplicate key %q%s: keep one", s[1], underSection(section, found))
		return
	}
	if s := yamlMismatchPattern.FindStringSubmatch(text); s != nil {
		p.addMismatch(line, s[1], s[2], s[3], nodes)
		return
	}
	p.addLine(line, "", "%s: check this line against docs/configuration.md", yamlGoTypePattern.ReplaceAllString(text, ""))
}

// addMismatch reports a value that does not fit its key, such as 10 for a
// duration, and drops the later checks of that key.
func (p *problems) addMismatch(line int, tag, value, goType string, nodes *nodeIndex) {
	kind := kindOf(goType)
	entry, found := nodes.value(line, tag, value, goType)
	if !found {
		p.addLine(line, "", "invalid %s %q: %s", kind.name, value, kind.fix)
		return
	}
	p.undecoded[entry.key] = true
	if entry.key == "" {
		p.addLine(line, "", "the file is %s, not a mapping of keys: write keys such as \"node: pbx1\", as docs/configuration.md shows", describeNode(entry.node))
		return
	}
	subject := entry.key
	if entry.item {
		subject = "an item of " + entry.key
	}
	p.addLine(line, entry.key, "invalid %s %s for %s: %s", kind.name, describeNode(entry.node), subject, kind.fix)
}

// describeNode returns a value as a message shows it: quoted when it is a
// scalar, else its kind.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "(a list)"
	case yaml.MappingNode:
		return "(a mapping)"
	default:
		return strconv.Quote(n.Value)
	}
}

func underSection(section string, found bool) string {
	if !found || section == "" {
		return ""
	}
	return " under " + section
}

// suggestKey returns a hint naming the key of the section that is closest
// to name, or "" when none is within two edits.
func suggestKey(section, name string) string {
	best, bestDistance := "", 3
	for _, key := range keysOf(section) {
		if d := editDistance(name, key); d < bestDistance {
			best, bestDistance = key, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// keysOf returns the keys that the section at a dotted key accepts.
func keysOf(section string) []string {
	t := reflect.TypeFor[Config]()
	if section != "" {
		for part := range strings.SplitSeq(section, ".") {
			f, ok := fieldByKey(t, part)
			if !ok || f.Type.Kind() != reflect.Struct {
				return nil
			}
			t = f.Type
		}
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, yamlName(t.Field(i)))
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// editDistance returns the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous = current
	}
	return previous[len(b)]
}

// yamlEntry is a node of the file with the dotted key it belongs to.
type yamlEntry struct {
	node  *yaml.Node
	key   string // key of the value, or of the mapping that holds this key
	isKey bool   // node is a mapping key
	item  bool   // node is a list item of key
}

// nodeIndex finds the node that an entry of a yaml.TypeError is about. An
// entry gives only the line, so on a line with several values, such as a
// flow mapping, it takes the first node that no earlier entry matched.
type nodeIndex struct {
	entries []yamlEntry
	matched map[*yaml.Node]bool
}

func newNodeIndex(root *yaml.Node) *nodeIndex {
	idx := &nodeIndex{matched: map[*yaml.Node]bool{}}
	idx.add(root, "", false)
	return idx
}

func (idx *nodeIndex) add(n *yaml.Node, key string, item bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			idx.add(c, key, false)
		}
	case yaml.MappingNode:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			idx.entries = append(idx.entries, yamlEntry{node: k, key: key, isKey: true})
			idx.add(n.Content[i+1], joinKey(key, k.Value), false)
		}
	case yaml.SequenceNode:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
		for _, c := range n.Content {
			idx.add(c, key, true)
		}
	default:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
	}
}

// keyIn returns the dotted key of the section that holds the key name
// written on line.
func (idx *nodeIndex) keyIn(line int, name string) (string, bool) {
	e, ok := idx.find(func(e yamlEntry) bool { return e.isKey && e.node.Line == line && e.node.Value == name })
	return e.key, ok
}

// value returns the value on line with tag and Go type goType, whose
// text starts as in the entry. yaml.v3 cuts a value longer than 10 bytes
// to 7 and "...".
func (idx *nodeIndex) value(line int, tag, text, goType string) (yamlEntry, bool) {
	return idx.find(func(e yamlEntry) bool {
		if e.isKey || e.node.Line != line || e.node.ShortTag() != tag || typeName(e) != goType {
			return false
		}
		if prefix, cut := strings.CutSuffix(text, "..."); cut && len(text) == 10 {
			return strings.HasPrefix(e.node.Value, prefix)
		}
		return text == "" || e.node.Value == text
	})
}

// typeName returns the name of the Go type that the value of an entry
// decodes into, as yaml.v3 writes it in a TypeError, or "" for a key that
// Config does not have.
func typeName(e yamlEntry) string {
	t := reflect.TypeFor[Config]()
	if e.key != "" {
		for part := range strings.SplitSeq(e.key, ".") {
			switch t.Kind() {
			case reflect.Struct:
				f, ok := fieldByKey(t, part)
				if !ok {
					return ""
				}
				t = f.Type
			case reflect.Map:
				t = t.Elem()
			default:
				return ""
			}
		}
	}
	if e.item {
		if t.Kind() != reflect.Slice {
			return ""
		}
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem() // yaml.v3 names the type it decodes into, *bool as bool
	}
	return t.String()
}

func (idx *nodeIndex) find(match func(yamlEntry) bool) (yamlEntry, bool) {
	for _, e := range idx.entries {
		if !idx.matched[e.node] && match(e) {
			idx.matched[e.node] = true
			return e, true
		}
	}
	return yamlEntry{}, false
}

// problems collects the configuration errors, each with where its value
// came from: the line of its key in the file, or the environment variable
// that set it.
type problems struct {
	file string
	root *yaml.Node
	// env holds the keys set by an environment variable.
	env map[string]envSource
	// undecoded holds the keys whose value could not be decoded, so their
	// field holds a default that is not what the user wrote.
	undecoded map[string]bool
	// keys holds the keys that have a problem.
	keys        map[string]bool
	syntaxError bool
	list        []error
}
