package daemon

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// envSource is the environment variable that set a key.
type envSource struct {
	name   string
	value  string
	secret bool // the value is not printed
}

func (s envSource) String() string {
	if s.secret {
		return s.name
	}
	return fmt.Sprintf("%s=%q", s.name, s.value)
}

func newProblems(file string) *problems {
	return &problems{file: file, env: map[string]envSource{}, undecoded: map[string]bool{}, keys: map[string]bool{}}
}

// add records a problem of key. It names the environment variable when one
// set the key, else the line of the key in the file. A problem of a key
// whose value could not be decoded is dropped: the decode error names that
// key already, and the value checked would be the default.
func (p *problems) add(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if source, ok := p.envSourceOf(key); ok {
		p.record(key, fmt.Errorf("environment %s: %s", source, msg))
		return
	}
	if p.isUndecoded(key) {
		return
	}
	p.addLine(p.line(key), key, "%s", msg)
}

// addLine records a problem of key at a line of the file, or without a
// line when line is 0.
func (p *problems) addLine(line int, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		p.record(key, fmt.Errorf("%s:%d: %s", p.file, line, msg))
		return
	}
	p.record(key, fmt.Errorf("%s: %s", p.file, msg))
}

func (p *problems) record(key string, err error) {
	p.keys[key] = true
	p.list = append(p.list, err)
}

func (p *problems) err() error {
	return errors.Join(p.list...)
}

// envSourceOf returns the variable that set key or a section above it,
// such as AGENTD_DEVICE_STATES for device_states.PAUSED.
func (p *problems) envSourceOf(key string) (envSource, bool) {
	for k := key; k != ""; k = k[:max(strings.LastIndex(k, "."), 0)] {
		if source, ok := p.env[k]; ok {
			return source, true
		}
	}
	return envSource{}, false
}

// envKey returns the first of keys that an environment variable set, or
// the first key, so that a problem of two keys names the variable.
func (p *problems) envKey(keys ...string) string {
	for _, key := range keys {
		if _, ok := p.env[key]; ok {
			return key
		}
	}
	return keys[0]
}

func (p *problems) isUndecoded(key string) bool {
	for u := range p.undecoded {
		if u == "" || key == u || strings.HasPrefix(key, u+".") {
			return true
		}
	}
	return false
}

// hasProblemUnder reports whether a problem was recorded for one of keys
// or a key below them.
func (p *problems) hasProblemUnder(keys ...string) bool {
	for k := range p.keys {
		for _, key := range keys {
			if k == key || strings.HasPrefix(k, key+".") {
				return true
			}
		}
	}
	return false
}

// line returns the line of a dotted key in the file, or 0 when the key is
// not written there (a default or an environment value).
func (p *problems) line(key string) int {
	if key == "" || p.root == nil || len(p.root.Content) == 0 {
		return 0
	}
	n := p.root.Content[0]
	line := 0
	for part := range strings.SplitSeq(key, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}
