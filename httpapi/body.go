package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Body fields. Other fields are ignored, so a client may send more.
const (
	fieldPauseID = "pause_id"
	fieldAgentID = "agent_id"
)

// Maximum bytes of a rejected value and of a request path that a message
// quotes.
const (
	maxShownValue = 40
	maxShownPath  = 200
)

var (
	// A pause id sent as a JSON number must be a non-negative integer
	// literal. JSON allows no leading zeros, so 0 is the only number that
	// reads as pause "0", and pause "00" can only be sent as a string.
	nonNegativeInteger = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	integerLiteral     = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
)

// field is one body field as sent: form values are always strings, JSON
// values keep their raw text.
type field struct {
	text string // the string value, or the raw JSON literal
	json bool   // text is a raw JSON value
}

// requestBody holds the decoded fields of a request body.
type requestBody map[string]field

// readBody reads the body up to the size limit and decodes it by its
// Content-Type. An empty body decodes to no fields whatever its type.
func (s *Server) readBody(c echo.Context) (requestBody, error) {
	r := c.Request()
	if r.ContentLength > s.maxBodyBytes {
		return nil, newAPIError(codeRequestTooLarge, msgBodyTooLarge, s.maxBodyBytes)
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, newAPIError(codeRequestTooLarge, msgBodyTooLarge, s.maxBodyBytes)
	case err != nil:
		return nil, newAPIError(codeInvalidRequest, msgBodyUnreadable).withCause(err)
	case len(bytes.TrimSpace(data)) == 0:
		return requestBody{}, nil
	}
	return s.decodeBody(r.Header.Get(echo.HeaderContentType), data)
}

func (s *Server) decodeBody(contentType string, data []byte) (requestBody, error) {
	if contentType == "" {
		return nil, newAPIError(codeUnsupportedMediaType, msgContentTypeMissing)
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, newAPIError(codeInvalidRequest, msgContentTypeInvalid, contentType, err.Error()).withCause(err)
	}
	switch mediaType {
	case echo.MIMEApplicationJSON:
		return decodeJSON(data)
	case echo.MIMEApplicationForm:
		values, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, newAPIError(codeInvalidRequest, msgFormSyntax, err.Error()).withCause(err)
		}
		return formFields(values)
	case echo.MIMEMultipartForm:
		return s.decodeMultipart(contentType, params["boundary"], data)
	default:
		return nil, newAPIError(codeUnsupportedMediaType, msgContentTypeUnsupported, mediaType)
	}
}

// decodeJSON reads one JSON object. Values are kept raw so that the type
// of each can be checked. A key sent twice is rejected because decoders
// disagree on which value wins.
func decodeJSON(data []byte) (requestBody, error) {
	// json.Unmarshal reports a syntax error, trailing data included, with
	// the offset of the byte that failed. The streaming decoder below
	// reports some errors at the start of the value instead.
	var whole any
	if err := json.Unmarshal(data, &whole); err != nil {
		return nil, jsonSyntaxError(err, 0)
	}
	switch whole.(type) {
	case map[string]any:
	case []any:
		return nil, newAPIError(codeInvalidRequest, msgJSONNotObject, "an array")
	case string:
		return nil, newAPIError(codeInvalidRequest, msgJSONNotObject, "a string")
	default:
		return nil, newAPIError(codeInvalidRequest, msgJSONNotObject, field{text: string(data), json: true}.shown())
	}

	// Stream the object again, because Unmarshal keeps only the last value
	// of a repeated key.
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, jsonSyntaxError(err, dec.InputOffset())
	}
	body := requestBody{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, jsonSyntaxError(err, dec.InputOffset())
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, jsonSyntaxError(err, dec.InputOffset())
		}
		name := key.(string) // dec.More inside an object guarantees a string key
		if _, repeated := body[name]; repeated {
			return nil, newAPIError(codeInvalidRequest, msgFieldRepeated, name)
		}
		body[name] = field{text: string(value), json: true}
	}
	return body, nil
}

// jsonSyntaxError names the byte and the problem of a JSON error. offset
// is used when err is not a *json.SyntaxError.
func jsonSyntaxError(err error, offset int64) *apiError {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		offset = syntaxErr.Offset
	}
	return newAPIError(codeInvalidRequest, msgJSONSyntax, offset, err.Error()).withCause(err)
}

func (s *Server) decodeMultipart(contentType, boundary string, data []byte) (requestBody, error) {
	if boundary == "" {
		return nil, newAPIError(codeInvalidRequest, msgContentTypeInvalid, contentType, "multipart/form-data needs a boundary parameter")
	}
	// The body is already in memory and within the size limit, so
	// ReadForm with that limit keeps every part in memory.
	form, err := multipart.NewReader(bytes.NewReader(data), boundary).ReadForm(s.maxBodyBytes)
	if err != nil {
		return nil, newAPIError(codeInvalidRequest, msgFormSyntax, err.Error()).withCause(err)
	}
	defer func() { _ = form.RemoveAll() }()
	return formFields(form.Value)
}

// formFields keeps the single value of each form field.
func formFields(values map[string][]string) (requestBody, error) {
	body := requestBody{}
	for name, list := range values {
		if len(list) > 1 {
			return nil, newAPIError(codeInvalidRequest, msgFieldRepeated, name)
		}
		body[name] = field{text: list[0]}
	}
	return body, nil
}

// useCaseArgs checks the fields and returns the use case arguments for the
// authenticated agent.
func (b requestBody) useCaseArgs(agentID string, needsPauseID bool) (useCaseCall, error) {
	call := useCaseCall{agentID: agentID}
	if f, ok := b[fieldAgentID]; ok {
		bodyAgent, valid := f.identifier(integerLiteral)
		if !valid {
			return call, newAPIError(codeInvalidRequest, msgAgentIDType, f.shown())
		}
		if bodyAgent != agentID {
			return call, newAPIError(codeForbidden, msgAgentMismatch, agentID, bodyAgent)
		}
	}
	if !needsPauseID {
		return call, nil
	}

	f, ok := b[fieldPauseID]
	if !ok {
		return call, newAPIError(codeInvalidRequest, msgPauseIDMissing)
	}
	pauseID, valid := f.identifier(nonNegativeInteger)
	switch {
	case !valid:
		return call, newAPIError(codeInvalidRequest, msgPauseIDType, f.shown())
	case pauseID == "":
		return call, newAPIError(codeInvalidRequest, msgPauseIDEmpty)
	}
	call.pauseID = pauseID
	return call, nil
}

// identifier returns the field as an id: a string as is, or a JSON number
// whose literal matches numberForm.
func (f field) identifier(numberForm *regexp.Regexp) (string, bool) {
	if !f.json {
		return f.text, true
	}
	var s string
	if strings.HasPrefix(f.text, `"`) && json.Unmarshal([]byte(f.text), &s) == nil {
		return s, true
	}
	if numberForm.MatchString(f.text) {
		return f.text, true
	}
	return "", false
}

// shown returns the value for an error message. A value longer than
// maxShownValue bytes is cut at a rune boundary and ends with an ellipsis.
func (f field) shown() string {
	text := f.text
	if f.json {
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(text)) == nil {
			text = compact.String()
		}
	}
	return truncate(text, maxShownValue)
}

// truncate cuts text to at most maxBytes bytes at a rune boundary and
// marks a cut with an ellipsis.
func truncate(text string, maxBytes int) string {
	if len(text) <= maxBytes {
		return text
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "…"
}
