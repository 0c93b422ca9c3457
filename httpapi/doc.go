// Package httpapi serves the agent session API that the OMniLeads webphone
// calls: POST /api/v1/asterisk_login/, asterisk_logout/, asterisk_pause/ and
// asterisk_unpause/, each with and without the trailing slash.
//
// The agent comes only from the credentials: a JWT bearer token whose
// algorithm is pinned by configuration, or HTTP Basic with the agent id and
// a password checked against the bcrypt hash in the agent directory. An
// agent acts only on itself. Before authentication, a request whose Origin
// header is neither agentd's own origin nor in Config.AllowedOrigins is
// rejected, so a page of another site cannot use credentials that the
// browser has stored.
//
// Handlers decode the body (JSON, form-encoded or multipart form), call one
// method of agent.Service with agent.SourceAPI and map its error to an HTTP
// status and a stable error code in one function, useCaseError. Error
// messages are in English, or in Latin American Spanish when Accept-Language
// prefers es. docs/api.md is the API reference.
package httpapi
