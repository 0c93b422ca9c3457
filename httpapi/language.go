package httpapi

import (
	"strconv"
	"strings"
)

// language is the language of error and warning messages.
type language int

const (
	english language = iota
	spanish
)

// contentLanguage returns the Content-Language tag (RFC 5646) of lang. The
// Spanish messages are written for Latin America, region 419.
func (lang language) contentLanguage() string {
	if lang == spanish {
		return "es-419"
	}
	return "en"
}

// preference is the quality value and position of the best entry of an
// Accept-Language header that matches one language.
type preference struct {
	q     float64
	index int
	found bool
}

// better reports whether p ranks above other: a higher q, or the same q and
// an earlier position in the header.
func (p preference) better(other preference) bool {
	if p.q != other.q {
		return p.q > other.q
	}
	return p.index < other.index
}

// negotiateLanguage picks English or Spanish from an Accept-Language header
// (RFC 9110 section 12.5.4). Tags are compared by their primary subtag, so
// es-AR and es-419 select Spanish. "*" stands for a language the header does
// not list. A q of 0 excludes a language. English is the default, including
// for a header that lists neither language.
func negotiateLanguage(header string) language {
	var en, es, wildcard preference
	for i, entry := range strings.Split(header, ",") {
		tag, q, ok := parseLanguageRange(entry)
		if !ok {
			continue
		}
		p := preference{q: q, index: i, found: true}
		switch tag {
		case "en":
			en = bestOf(en, p)
		case "es":
			es = bestOf(es, p)
		case "*":
			wildcard = bestOf(wildcard, p)
		}
	}
	if !en.found {
		en = wildcard
	}
	if !es.found {
		es = wildcard
	}
	if es.found && es.q > 0 && (!en.found || es.better(en)) {
		return spanish
	}
	return english
}

func bestOf(current, next preference) preference {
	if !current.found || next.better(current) {
		return next
	}
	return current
}

// parseLanguageRange returns the lower-case primary subtag and the q value
// of one Accept-Language entry, such as "es-AR;q=0.9". ok is false for an
// empty entry or an invalid q.
func parseLanguageRange(entry string) (primary string, q float64, ok bool) {
	tag, params, _ := strings.Cut(entry, ";")
	tag = strings.ToLower(strings.TrimSpace(tag))
	if tag == "" {
		return "", 0, false
	}
	primary, _, _ = strings.Cut(strings.ReplaceAll(tag, "_", "-"), "-")

	q = 1
	for param := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(param, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		parsed, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || parsed < 0 || parsed > 1 {
			return "", 0, false
		}
		q = parsed
	}
	return primary, q, true
}
