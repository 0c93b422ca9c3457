package daemon

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// applyEnv sets every key that has an AGENTD_ variable in environ and
// records the variable as the source of the key.
func applyEnv(cfg *Config, environ []string, p *problems) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return
	}
	walkKeys(reflect.ValueOf(cfg).Elem(), "", func(key string, field reflect.Value) {
		name := EnvName(key)
		value, ok := env[name]
		if !ok {
			return
		}
		source := envSource{name: name, value: value, secret: isSecretKey(key)}
		if kind, err := setFromString(field, value); err != nil {
			// The field keeps the value of the file, which is not the
			// value in force, so its checks would mislead.
			p.undecoded[key] = true
			p.record(key, fmt.Errorf("environment %s: invalid %s for %s: %s", source, kind.name, key, kind.fix))
			return
		}
		p.env[key] = source
	})
}

// EnvName returns the environment variable that overrides a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// isSecretKey reports whether the value of key must not be printed.
func isSecretKey(key string) bool {
	switch key[strings.LastIndex(key, ".")+1:] {
	case "password", "secret", "token":
		return true
	}
	return false
}

// walkKeys calls fn for each leaf of v with its dotted yaml key.
func walkKeys(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := yamlName(t.Field(i))
		if tag == "" || tag == "-" {
			continue
		}
		key := joinKey(prefix, tag)
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			walkKeys(f, key, fn)
			continue
		}
		fn(key, f)
	}
}

func yamlName(f reflect.StructField) string {
	return strings.Split(f.Tag.Get("yaml"), ",")[0]
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

var durationType = reflect.TypeFor[time.Duration]()

// setFromString parses an environment value into a config field. On
// failure it returns the kind of value the field takes.
func setFromString(f reflect.Value, s string) (valueKind, error) {
	kind := kindOf(f.Type().String())
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return kind, err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return kind, err
		}
		f.Set(reflect.ValueOf(&b))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return kind, err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return kind, err
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Map:
		m := map[string]string{}
		for item := range strings.SplitSeq(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok {
				return valueKind{"mapping", "write KEY=VALUE pairs separated by commas"}, errors.New("missing =")
			}
			m[k] = v
		}
		f.Set(reflect.ValueOf(m))
	default:
		return valueKind{"value", "set this key in the file"}, errors.New("no environment syntax")
	}
	return kind, nil
}

// valueKind is a kind of configuration value, with the fix for a value
// written wrong.
type valueKind struct {
	name string
	fix  string
}

// kindOf returns the kind of value that a Go type of Config takes, by the
// type's name as reflect and yaml.v3 write it.
func kindOf(goType string) valueKind {
	switch goType {
	case "time.Duration":
		return valueKind{"duration", "write a number with a unit, such as 10s or 1m30s"}
	case "int", "int64":
		return valueKind{"integer", "write a whole number, such as 1000"}
	case "bool", "*bool":
		return valueKind{"boolean", "use true or false"}
	case "string":
		return valueKind{"value", "write a single value, not a list or a mapping"}
	case "[]string":
		return valueKind{"list", "write a list, such as [a, b]"}
	case "map[string]string":
		return valueKind{"mapping", "write KEY: VALUE pairs indented below the key"}
	default:
		return valueKind{"section", "write its keys indented below it, as docs/configuration.md shows"}
	}
}

// The forms of the errors of yaml.v3 v3.0.1: a syntax error, and the
// entries of a TypeError, one per unknown key or value of the wrong type.
var (
	yamlSyntaxPattern    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlEntryPattern     = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownPattern   = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	yamlSetTwicePattern  = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	yamlDuplicatePattern = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	yamlMismatchPattern  = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
	yamlGoTypePattern    = regexp.MustCompile(`\s+(?:into|in type)\s+\S+$`)
)
