package httpapi

import "fmt"

// messageID names one message of the catalog. The default message of an
// error code has the code as its id and takes no arguments. The other
// messages name the value that failed.
type messageID string

// Default messages, one per error code.
const (
	msgInvalidRequest       messageID = codeInvalidRequest
	msgUnauthenticated      messageID = codeUnauthenticated
	msgForbidden            messageID = codeForbidden
	msgNotFound             messageID = codeNotFound
	msgMethodNotAllowed     messageID = codeMethodNotAllowed
	msgNotLoggedIn          messageID = codeNotLoggedIn
	msgPauseMismatch        messageID = codePauseMismatch
	msgRequestTooLarge      messageID = codeRequestTooLarge
	msgUnsupportedMediaType messageID = codeUnsupportedMediaType
	msgUnknownPause         messageID = codeUnknownPause
	msgAsteriskError        messageID = codeAsteriskError
	msgAsteriskUnavailable  messageID = codeAsteriskUnavailable
	msgStoreUnavailable     messageID = codeStoreUnavailable
	msgTimeout              messageID = codeTimeout
	msgInternal             messageID = codeInternal
)

// Messages that name the value that failed.
const (
	msgBodyUnreadable          messageID = "body_unreadable"
	msgJSONSyntax              messageID = "json_syntax"
	msgJSONNotObject           messageID = "json_not_object"
	msgFieldRepeated           messageID = "field_repeated"
	msgFormSyntax              messageID = "form_syntax"
	msgContentTypeInvalid      messageID = "content_type_invalid"
	msgContentTypeMissing      messageID = "content_type_missing"
	msgContentTypeUnsupported  messageID = "content_type_unsupported"
	msgBodyTooLarge            messageID = "body_too_large"
	msgPauseIDMissing          messageID = "pause_id_missing"
	msgPauseIDEmpty            messageID = "pause_id_empty"
	msgPauseIDType             messageID = "pause_id_type"
	msgAgentIDType             messageID = "agent_id_type"
	msgCredentialsMissing      messageID = "credentials_missing"
	msgAuthorizationRepeated   messageID = "authorization_repeated"
	msgSchemeRejected          messageID = "scheme_rejected"
	msgTokenMalformed          messageID = "token_malformed"
	msgTokenSignature          messageID = "token_signature"
	msgTokenExpired            messageID = "token_expired"
	msgTokenNotYetValid        messageID = "token_not_yet_valid"
	msgTokenExpMissing         messageID = "token_exp_missing"
	msgTokenIssuer             messageID = "token_issuer"
	msgTokenAudience           messageID = "token_audience"
	msgTokenClaims             messageID = "token_claims"
	msgTokenAgentMissing       messageID = "token_agent_missing"
	msgTokenAgentType          messageID = "token_agent_type"
	msgBasicMalformed          messageID = "basic_malformed"
	msgBasicRejected           messageID = "basic_rejected"
	msgAgentNotInDirectory     messageID = "agent_not_in_directory"
	msgAgentMismatch           messageID = "agent_mismatch"
	msgNoEndpoint              messageID = "no_endpoint"
	msgNoRoute                 messageID = "no_route"
	msgNoRouteListMounted      messageID = "no_route_list_mounted"
	msgOriginRejected          messageID = "origin_rejected"
	msgMethodRejected          messageID = "method_rejected"
	msgAgentNotLoggedIn        messageID = "agent_not_logged_in"
	msgAgentInOtherPause       messageID = "agent_in_other_pause"
	msgAgentNotInPause         messageID = "agent_not_in_pause"
	msgPauseNotInCatalog       messageID = "pause_not_in_catalog"
	msgPauseNotInList          messageID = "pause_not_in_list"
	msgAsteriskRejected        messageID = "asterisk_rejected"
	msgAsteriskDisconnected    messageID = "asterisk_disconnected"
	msgStoreFailed             messageID = "store_failed"
	msgSessionsNotRead         messageID = "sessions_not_read"
	msgDeadlineExceeded        messageID = "deadline_exceeded"
	msgInternalWithID          messageID = "internal_with_request_id"
	msgWarningNoSuchQueue      messageID = "warning_no_such_queue"
	msgWarningUnknownCondition messageID = "warning_unknown_condition"
)

// translation is one message in English and in Latin American Spanish.
// Both are fmt formats that take the same arguments in the same order.
type translation struct {
	en string
	es string
}

// catalog holds every message in both languages, side by side.
var catalog = map[messageID]translation{
	msgInvalidRequest: {
		en: "The request is invalid. Check it against the API reference.",
		es: "La solicitud no es válida. Revísela según la referencia de la API.",
	},
	msgUnauthenticated: {
		en: "The request has no valid credentials. Send the agent's bearer token or Basic credentials.",
		es: "La solicitud no tiene credenciales válidas. Envíe el token bearer o las credenciales Basic del agente.",
	},
	msgForbidden: {
		en: "These credentials do not allow this request.",
		es: "Estas credenciales no permiten esta solicitud.",
	},
	msgNotFound: {
		en: "No endpoint at this path. Use POST on /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ or /api/v1/asterisk_unpause/.",
		es: "No hay ningún endpoint en esta ruta. Use POST en /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ o /api/v1/asterisk_unpause/.",
	},
	msgMethodNotAllowed: {
		en: "This method is not allowed here. Use POST.",
		es: "Este método no está permitido aquí. Use POST.",
	},
	msgNotLoggedIn: {
		en: "The agent is not logged in. Call asterisk_login first.",
		es: "El agente no tiene la sesión iniciada. Llame primero a asterisk_login.",
	},
	msgPauseMismatch: {
		en: "The agent is not in this pause. Send the id of the agent's current pause.",
		es: "El agente no está en esta pausa. Envíe el id de la pausa actual del agente.",
	},
	msgRequestTooLarge: {
		en: "The request body is too large. Send only the documented fields.",
		es: "El cuerpo de la solicitud es demasiado grande. Envíe solo los campos documentados.",
	},
	msgUnsupportedMediaType: {
		en: "This Content-Type is not supported. Send application/json or application/x-www-form-urlencoded.",
		es: "Este Content-Type no está soportado. Envíe application/json o application/x-www-form-urlencoded.",
	},
	msgUnknownPause: {
		en: "The pause is not in the pause catalog. Use one of the configured pause ids.",
		es: "La pausa no está en el catálogo de pausas. Use uno de los ids de pausa configurados.",
	},
	msgAsteriskError: {
		en: "Asterisk rejected the request. Try again, and tell the administrator if it keeps failing.",
		es: "Asterisk rechazó la solicitud. Intente de nuevo y avise al administrador si el error persiste.",
	},
	msgAsteriskUnavailable: {
		en: "agentd has no connection to Asterisk. Try again in a few seconds.",
		es: "agentd no tiene conexión con Asterisk. Intente de nuevo en unos segundos.",
	},
	msgStoreUnavailable: {
		en: "agentd could not store the session change. Try again in a few seconds.",
		es: "agentd no pudo guardar el cambio de sesión. Intente de nuevo en unos segundos.",
	},
	msgTimeout: {
		en: "The request did not finish in time. Repeating it is safe.",
		es: "La solicitud no terminó a tiempo. Es seguro repetirla.",
	},
	msgInternal: {
		en: "Internal error. Tell the administrator the request id from the X-Request-Id header.",
		es: "Error interno. Indique al administrador el id de solicitud del encabezado X-Request-Id.",
	},

	msgBodyUnreadable: {
		en: "The request body could not be read. Send the request again.",
		es: "No se pudo leer el cuerpo de la solicitud. Envíe la solicitud de nuevo.",
	},
	msgJSONSyntax: {
		en: `The request body is not valid JSON at byte %d: %s. Send a JSON object such as {"pause_id": "5"}.`,
		es: `El cuerpo de la solicitud no es JSON válido en el byte %d: %s. Envíe un objeto JSON como {"pause_id": "5"}.`,
	},
	msgJSONNotObject: {
		en: `The request body must be a JSON object, got %s. Send an object such as {"pause_id": "5"}.`,
		es: `El cuerpo de la solicitud debe ser un objeto JSON, se recibió %s. Envíe un objeto como {"pause_id": "5"}.`,
	},
	msgFieldRepeated: {
		en: "Field %s appears more than once in the request body. Send it once.",
		es: "El campo %s aparece más de una vez en el cuerpo de la solicitud. Envíelo una sola vez.",
	},
	msgFormSyntax: {
		en: "The form in the request body is invalid: %s. Encode it as application/x-www-form-urlencoded or multipart/form-data.",
		es: "El formulario del cuerpo de la solicitud no es válido: %s. Codifíquelo como application/x-www-form-urlencoded o multipart/form-data.",
	},
	msgContentTypeInvalid: {
		en: "The Content-Type header %q is invalid: %s. Send application/json or application/x-www-form-urlencoded.",
		es: "El encabezado Content-Type %q no es válido: %s. Envíe application/json o application/x-www-form-urlencoded.",
	},
	msgContentTypeMissing: {
		en: "The request has a body but no Content-Type header. Send Content-Type: application/json or application/x-www-form-urlencoded.",
		es: "La solicitud tiene cuerpo pero no tiene encabezado Content-Type. Envíe Content-Type: application/json o application/x-www-form-urlencoded.",
	},
	msgContentTypeUnsupported: {
		en: "Content-Type %q is not supported. Send application/json, application/x-www-form-urlencoded or multipart/form-data.",
		es: "El Content-Type %q no está soportado. Envíe application/json, application/x-www-form-urlencoded o multipart/form-data.",
	},
	msgBodyTooLarge: {
		en: "The request body is larger than %d bytes. Send only the documented fields.",
		es: "El cuerpo de la solicitud supera los %d bytes. Envíe solo los campos documentados.",
	},
	msgPauseIDMissing: {
		en: `pause_id is missing. Send the id of a pause from the pause catalog, such as {"pause_id": "5"}.`,
		es: `Falta pause_id. Envíe el id de una pausa del catálogo de pausas, como {"pause_id": "5"}.`,
	},
	msgPauseIDEmpty: {
		en: "pause_id is empty. Send the id of a pause from the pause catalog.",
		es: "pause_id está vacío. Envíe el id de una pausa del catálogo de pausas.",
	},
	msgPauseIDType: {
		en: `pause_id must be a string or a non-negative integer, got %s. Send it as "5" or 5.`,
		es: `pause_id debe ser un texto o un número entero no negativo, se recibió %s. Envíelo como "5" o 5.`,
	},
	msgAgentIDType: {
		en: "agent_id must be a string or an integer, got %s. Leave agent_id out, because the agent comes from the credentials.",
		es: "agent_id debe ser un texto o un número entero, se recibió %s. Omita agent_id, porque el agente se toma de las credenciales.",
	},
	msgCredentialsMissing: {
		en: "The request has no credentials. Send an Authorization header with one of these schemes: %s.",
		es: "La solicitud no tiene credenciales. Envíe un encabezado Authorization con uno de estos esquemas: %s.",
	},
	msgAuthorizationRepeated: {
		en: "The request has %d Authorization headers. Send exactly one.",
		es: "La solicitud tiene %d encabezados Authorization. Envíe uno solo.",
	},
	msgSchemeRejected: {
		en: "Authorization scheme %q is not accepted. Use one of these schemes: %s.",
		es: "El esquema de autorización %q no se acepta. Use uno de estos esquemas: %s.",
	},
	msgTokenMalformed: {
		en: "The bearer token is not a valid JWT. Send a token in the form header.payload.signature.",
		es: "El token bearer no es un JWT válido. Envíe un token con la forma header.payload.signature.",
	},
	msgTokenSignature: {
		en: "The bearer token signature is invalid or the token is not signed with %s. Get a new token from the issuer.",
		es: "La firma del token bearer no es válida o el token no está firmado con %s. Obtenga un token nuevo del emisor.",
	},
	msgTokenExpired: {
		en: "The bearer token has expired. Get a new token and try again.",
		es: "El token bearer expiró. Obtenga un token nuevo e intente de nuevo.",
	},
	msgTokenNotYetValid: {
		en: "The bearer token is not valid yet (nbf). Check the clocks of the token issuer and of agentd.",
		es: "El token bearer todavía no es válido (nbf). Revise los relojes del emisor del token y de agentd.",
	},
	msgTokenExpMissing: {
		en: "The bearer token has no exp claim. Get a token with an expiration time.",
		es: "El token bearer no tiene el claim exp. Obtenga un token con fecha de expiración.",
	},
	msgTokenIssuer: {
		en: "The bearer token was not issued by %q. Get a token from that issuer.",
		es: "El token bearer no fue emitido por %q. Obtenga un token de ese emisor.",
	},
	msgTokenAudience: {
		en: "The bearer token is not for audience %q. Get a token for that audience.",
		es: "El token bearer no es para la audiencia %q. Obtenga un token para esa audiencia.",
	},
	msgTokenClaims: {
		en: "The bearer token has invalid claims. Get a new token from the issuer.",
		es: "El token bearer tiene claims no válidos. Obtenga un token nuevo del emisor.",
	},
	msgTokenAgentMissing: {
		en: "The bearer token names no agent. Put the agent id in claim %s or in sub.",
		es: "El token bearer no indica ningún agente. Ponga el id del agente en el claim %s o en sub.",
	},
	msgTokenAgentType: {
		en: "Claim %s of the bearer token must be a non-empty string or an integer, got %s.",
		es: "El claim %s del token bearer debe ser un texto no vacío o un número entero, se recibió %s.",
	},
	msgBasicMalformed: {
		en: "The Basic credentials are malformed. Send base64 of agent_id:password.",
		es: "Las credenciales Basic están mal formadas. Envíe agent_id:contraseña en base64.",
	},
	msgBasicRejected: {
		en: "Wrong agent id or password.",
		es: "El id de agente o la contraseña son incorrectos.",
	},
	msgAgentNotInDirectory: {
		en: "Agent %q is not in the agent directory of agentd. Ask the administrator to add it.",
		es: "El agente %q no está en el directorio de agentes de agentd. Pida al administrador que lo agregue.",
	},
	msgAgentMismatch: {
		en: "The credentials belong to agent %q, but the body names agent %q. An agent can act only on itself, so leave agent_id out.",
		es: "Las credenciales son del agente %q, pero el cuerpo indica el agente %q. Un agente solo puede actuar sobre sí mismo, así que omita agent_id.",
	},
	msgNoEndpoint: {
		en: "No endpoint at %s. Use POST on /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ or /api/v1/asterisk_unpause/.",
		es: "No hay ningún endpoint en %s. Use POST en /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ o /api/v1/asterisk_unpause/.",
	},
	msgNoRoute: {
		en: "No route for %s %s. The API routes are POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ and /api/v1/asterisk_unpause/.",
		es: "No hay ninguna ruta para %s %s. Las rutas de la API son POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ y /api/v1/asterisk_unpause/.",
	},
	msgNoRouteListMounted: {
		en: "No route for %s %s. The API routes are POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ and /api/v1/asterisk_unpause/. The other routes are %s.",
		es: "No hay ninguna ruta para %s %s. Las rutas de la API son POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ y /api/v1/asterisk_unpause/. Las demás rutas son %s.",
	},
	msgOriginRejected: {
		en: "Requests from pages at origin %q are rejected, because it is neither this server's own origin (%s) nor listed in http.cors.allowed_origins. If that page is a trusted webphone, ask the administrator to add its origin to http.cors.allowed_origins.",
		es: "Se rechazan las solicitudes de páginas del origen %q, porque no es el origen propio de este servidor (%s) ni figura en http.cors.allowed_origins. Si esa página es un webphone de confianza, pida al administrador que agregue su origen a http.cors.allowed_origins.",
	},
	msgMethodRejected: {
		en: "Method %s is not allowed on %s. Use %s.",
		es: "El método %s no está permitido en %s. Use %s.",
	},
	msgAgentNotLoggedIn: {
		en: "Agent %q is not logged in. Call asterisk_login first.",
		es: "El agente %q no tiene la sesión iniciada. Llame primero a asterisk_login.",
	},
	msgAgentInOtherPause: {
		en: "Agent %q is in pause %q, not in pause %q. Send pause_id %q to end the current pause.",
		es: "El agente %q está en la pausa %q, no en la pausa %q. Envíe pause_id %q para terminar la pausa actual.",
	},
	msgAgentNotInPause: {
		en: "Agent %q is not in pause %q. Send the id of the agent's current pause.",
		es: "El agente %q no está en la pausa %q. Envíe el id de la pausa actual del agente.",
	},
	msgPauseNotInCatalog: {
		en: "pause_id %q is not in the pause catalog. Use one of the configured pause ids.",
		es: "pause_id %q no está en el catálogo de pausas. Use uno de los ids de pausa configurados.",
	},
	msgPauseNotInList: {
		en: "pause_id %q is not in the pause catalog. Use one of the configured pause ids (%s).",
		es: "pause_id %q no está en el catálogo de pausas. Use uno de los ids de pausa configurados (%s).",
	},
	msgAsteriskRejected: {
		en: "Asterisk rejected %s: %s. Try again, and tell the administrator if it keeps failing.",
		es: "Asterisk rechazó %s: %s. Intente de nuevo y avise al administrador si el error persiste.",
	},
	msgAsteriskDisconnected: {
		en: "agentd has no connection to Asterisk. Try again in %d seconds.",
		es: "agentd no tiene conexión con Asterisk. Intente de nuevo en %d segundos.",
	},
	msgStoreFailed: {
		en: "agentd could not store the session change. Try again in %d seconds.",
		es: "agentd no pudo guardar el cambio de sesión. Intente de nuevo en %d segundos.",
	},
	msgSessionsNotRead: {
		en: "agentd has not read the agents' sessions from its store yet. Try again in %d seconds.",
		es: "agentd todavía no leyó las sesiones de los agentes de su almacenamiento. Intente de nuevo en %d segundos.",
	},
	msgDeadlineExceeded: {
		en: "The request did not finish within %s. Repeating it is safe.",
		es: "La solicitud no terminó en %s. Es seguro repetirla.",
	},
	msgInternalWithID: {
		en: "Internal error. Tell the administrator request id %s.",
		es: "Error interno. Indique al administrador el id de solicitud %s.",
	},
	msgWarningNoSuchQueue: {
		en: "Queue %q does not exist in Asterisk, so the agent was not added to it. Ask the administrator to create the queue or remove it from the agent.",
		es: "La cola %q no existe en Asterisk, así que el agente no fue agregado a ella. Pida al administrador que cree la cola o la quite del agente.",
	},
	msgWarningUnknownCondition: {
		en: "Warning %s on queue %q.",
		es: "Advertencia %s en la cola %q.",
	},
}

// format renders message id in language lang.
func (lang language) format(id messageID, args ...any) string {
	t, ok := catalog[id]
	if !ok {
		// Unreachable while every messageID constant has a catalog entry,
		// which TestEveryMessageIDInCatalog checks.
		return string(id)
	}
	if lang == spanish {
		return fmt.Sprintf(t.es, args...)
	}
	return fmt.Sprintf(t.en, args...)
}
