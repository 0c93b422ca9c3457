package httpapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNegotiateLanguage(t *testing.T) {
	tests := []struct {
		header string
		want   language
	}{
		{"", english},
		{"es", spanish},
		{"ES", spanish},
		{"es-AR", spanish},
		{"es_AR", spanish},
		{"es-419", spanish},
		{"en", english},
		{"es-AR,es;q=0.9,en;q=0.8", spanish},
		{"en-US,es;q=0.5", english},
		{"en-US,en;q=0.9,es;q=0.95", english},
		{"en-US;q=0.8,en;q=0.9,es;q=0.95", spanish},
		{"es;q=0.5,en;q=0.5", spanish},
		{"en;q=0.5,es;q=0.5", english},
		{"es, en", spanish},
		{"en, es", english},
		{"fr-FR, es;q=0.3", spanish},
		{"fr-FR, de", english},
		{"es;q=0", english},
		{"es;q=0, en;q=0", english},
		{"*", english},
		{"es;q=0.5, *", english},
		{"*;q=0.1, es;q=0.5", spanish},
		{"en;q=0, *", spanish},
		{"es;q=abc", english},
		{"es;q=1.5", english},
		{"es;q=-1", english},
		{"es ; Q=0.8 , en;q=0.7", spanish},
		{",,es", spanish},
		{"es;level=1", spanish},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			assert.Equal(t, tt.want, negotiateLanguage(tt.header))
		})
	}
}

func TestContentLanguageTags(t *testing.T) {
	assert.Equal(t, "en", english.contentLanguage())
	assert.Equal(t, "es-419", spanish.contentLanguage())
}
