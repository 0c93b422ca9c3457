package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// formatVerb matches fmt verbs, skipping the escaped percent sign.
var formatVerb = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*[a-zA-Z]`)

func TestCatalogHasBothLanguages(t *testing.T) {
	for id, tr := range catalog {
		assert.NotEmpty(t, tr.en, "message %s has no English text", id)
		assert.NotEmpty(t, tr.es, "message %s has no Spanish text", id)
		assert.NotEqual(t, tr.en, tr.es, "message %s is not translated", id)
		assert.Equal(t, formatVerb.FindAllString(tr.en, -1), formatVerb.FindAllString(tr.es, -1),
			"message %s: English and Spanish take different arguments", id)
	}
}

func TestEveryCodeHasMessages(t *testing.T) {
	for code, status := range statusByCode {
		tr, ok := catalog[messageID(code)]
		require.True(t, ok, "code %s has no default message", code)
		assert.NotEmpty(t, tr.en, "code %s", code)
		assert.NotEmpty(t, tr.es, "code %s", code)
		assert.Empty(t, formatVerb.FindAllString(tr.en, -1), "default message of %s takes no arguments", code)
		assert.GreaterOrEqual(t, status, 400, "code %s", code)
	}
	assert.Len(t, statusByCode, 15)
}

// TestEveryMessageIDInCatalog reads the messageID constants from the
// source, so a new constant without a catalog entry fails here.
func TestEveryMessageIDInCatalog(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "messages.go", nil, 0)
	require.NoError(t, err)
	ids := 0
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if typ, ok := spec.Type.(*ast.Ident); !ok || typ.Name != "messageID" {
			return true
		}
		for i, name := range spec.Names {
			ids++
			value := idValue(t, spec.Values[i])
			_, found := catalog[messageID(value)]
			assert.True(t, found, "constant %s (%q) has no catalog entry", name.Name, value)
		}
		return true
	})
	assert.Equal(t, len(catalog), ids, "catalog entries and messageID constants differ in number")
}

// idValue resolves a constant's value: a string literal or an error code
// constant.
func idValue(t *testing.T, expr ast.Expr) string {
	t.Helper()
	switch v := expr.(type) {
	case *ast.BasicLit:
		s, err := strconv.Unquote(v.Value)
		require.NoError(t, err)
		return s
	case *ast.Ident:
		names := map[string]string{
			"codeInvalidRequest": codeInvalidRequest, "codeUnauthenticated": codeUnauthenticated, "codeForbidden": codeForbidden,
			"codeNotFound": codeNotFound, "codeMethodNotAllowed": codeMethodNotAllowed, "codeNotLoggedIn": codeNotLoggedIn,
			"codePauseMismatch": codePauseMismatch, "codeRequestTooLarge": codeRequestTooLarge, "codeUnsupportedMediaType": codeUnsupportedMediaType,
			"codeUnknownPause": codeUnknownPause, "codeAsteriskError": codeAsteriskError, "codeAsteriskUnavailable": codeAsteriskUnavailable,
			"codeStoreUnavailable": codeStoreUnavailable, "codeTimeout": codeTimeout, "codeInternal": codeInternal,
		}
		value, ok := names[v.Name]
		require.True(t, ok, "unknown constant %s", v.Name)
		return value
	default:
		t.Fatalf("unexpected expression %T", expr)
		return ""
	}
}

func TestFormatFallsBackToID(t *testing.T) {
	assert.Equal(t, "no_such_message", english.format("no_such_message"))
}
