package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures bearer tokens.
type JWTConfig struct {
	// Algorithm is the only accepted "alg": HS256, RS256 or EdDSA. Tokens
	// with any other alg, "none" included, are rejected.
	Algorithm string
	// Secret is the shared HS256 key, at least 32 bytes.
	Secret []byte
	// PublicKeyPEM is the PEM public key for RS256 (RSA, 2048 bits or more)
	// or EdDSA (Ed25519).
	PublicKeyPEM []byte
	// AgentClaim names the claim that holds the agent id, a string or an
	// integer. Empty means DefaultAgentClaim. When the token lacks it, sub
	// is read instead.
	AgentClaim string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be in the token's aud.
	Audience string
	// Leeway is the clock skew allowed when checking exp and nbf.
	Leeway time.Duration
	// RequireExp rejects tokens without exp. Nil means true.
	RequireExp *bool
}

// DefaultAgentClaim is the claim read for the agent id when
// JWTConfig.AgentClaim is empty.
const DefaultAgentClaim = "agent_id"

// Supported JWT algorithms.
const (
	AlgorithmHS256 = "HS256"
	AlgorithmRS256 = "RS256"
	AlgorithmEdDSA = "EdDSA"
)

// Minimum key sizes. RFC 7518 section 3.2 requires an HS256 key of at
// least the hash size, 256 bits. Section 3.3 requires RSA keys of 2048
// bits or more.
const (
	minHS256SecretBytes = 32
	minRSAKeyBits       = 2048
)

// jwtVerifier checks bearer tokens and reads the agent id from them.
type jwtVerifier struct {
	parser    *jwt.Parser
	key       any
	algorithm string
	claim     string
	issuer    string
	audience  string
}

func newJWTVerifier(cfg JWTConfig) (*jwtVerifier, error) {
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("JWT leeway is %s: use 0 or a positive duration", cfg.Leeway)
	}
	key, err := verificationKey(cfg)
	if err != nil {
		return nil, err
	}
	v := &jwtVerifier{
		key:       key,
		algorithm: cfg.Algorithm,
		claim:     orDefault(cfg.AgentClaim, DefaultAgentClaim),
		issuer:    cfg.Issuer,
		audience:  cfg.Audience,
	}

	// WithJSONNumber keeps an integer agent id exactly as written, because
	// a float64 would print 1e+06 for 1000000.
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{cfg.Algorithm}), jwt.WithJSONNumber(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.RequireExp == nil || *cfg.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// verificationKey parses the key that cfg.Algorithm needs and rejects the
// key of the other kind, so a configuration cannot mix them.
func verificationKey(cfg JWTConfig) (any, error) {
	switch cfg.Algorithm {
	case AlgorithmHS256:
		if len(cfg.PublicKeyPEM) > 0 {
			return nil, errors.New("JWT algorithm HS256 takes a secret, but a public key is set: remove the public key or use RS256 or EdDSA")
		}
		if len(cfg.Secret) < minHS256SecretBytes {
			return nil, fmt.Errorf("JWT secret has %d bytes: HS256 needs at least %d", len(cfg.Secret), minHS256SecretBytes)
		}
		return cfg.Secret, nil
	case AlgorithmRS256, AlgorithmEdDSA:
		if len(cfg.Secret) > 0 {
			return nil, fmt.Errorf("JWT algorithm %s takes a public key, but a secret is set: remove the secret or use HS256", cfg.Algorithm)
		}
		return publicKey(cfg.Algorithm, cfg.PublicKeyPEM)
	case "":
		return nil, errors.New("JWT algorithm is empty: use HS256, RS256 or EdDSA")
	default:
		return nil, fmt.Errorf("JWT algorithm %q is not supported: use HS256, RS256 or EdDSA", cfg.Algorithm)
	}
}

func publicKey(algorithm string, pemData []byte) (any, error) {
	if len(pemData) == 0 {
		return nil, fmt.Errorf("JWT public key is empty: %s needs a PEM public key", algorithm)
	}
	if algorithm == AlgorithmEdDSA {
		key, err := jwt.ParseEdPublicKeyFromPEM(pemData)
		if err != nil {
			return nil, fmt.Errorf("JWT public key is not a PEM Ed25519 public key: %w", err)
		}
		return key, nil
	}
	key, err := jwt.ParseRSAPublicKeyFromPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("JWT public key is not a PEM RSA public key: %w", err)
	}
	if bits := key.N.BitLen(); bits < minRSAKeyBits {
		return nil, fmt.Errorf("JWT RSA public key has %d bits: RS256 needs at least %d", bits, minRSAKeyBits)
	}
	return key, nil
}

// agentID verifies the token and returns the agent id it names.
func (v *jwtVerifier) agentID(raw string) (string, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return "", v.rejection(err, claims)
	}
	return v.claimedAgentID(claims)
}

// rejection picks the message for a token that failed verification. The
// token itself is never part of the error.
func (v *jwtVerifier) rejection(err error, claims jwt.MapClaims) *apiError {
	e := &apiError{code: codeUnauthenticated, cause: err, invalidToken: true}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		e.msg = msgTokenMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		e.msg, e.args = msgTokenSignature, []any{v.algorithm}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), v.issuer != "" && claims["iss"] == nil:
		e.msg, e.args = msgTokenIssuer, []any{v.issuer}
	case errors.Is(err, jwt.ErrTokenInvalidAudience), v.audience != "" && claims["aud"] == nil:
		e.msg, e.args = msgTokenAudience, []any{v.audience}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims["exp"] == nil:
		e.msg = msgTokenExpMissing
	case errors.Is(err, jwt.ErrTokenExpired):
		e.msg = msgTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		e.msg = msgTokenNotYetValid
	default:
		e.msg = msgTokenClaims
	}
	return e
}

// claimedAgentID reads the agent id from the configured claim, or from sub
// when the token lacks that claim.
func (v *jwtVerifier) claimedAgentID(claims jwt.MapClaims) (string, error) {
	name := v.claim
	value, ok := claims[name]
	if !ok {
		name = "sub"
		value, ok = claims[name]
	}
	if !ok {
		return "", &apiError{code: codeUnauthenticated, msg: msgTokenAgentMissing, args: []any{v.claim}, invalidToken: true}
	}
	switch id := value.(type) {
	case string:
		if id != "" {
			return id, nil
		}
	case json.Number:
		if integerLiteral.MatchString(id.String()) {
			return id.String(), nil
		}
	}
	shown, _ := json.Marshal(value)
	return "", &apiError{code: codeUnauthenticated, msg: msgTokenAgentType, args: []any{name, field{text: string(shown), json: true}.shown()}, invalidToken: true}
}
