package httpapi

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"

	"github.com/contactcenter/agentd/agent"
	"golang.org/x/crypto/bcrypt"
)

// maxPasswordBytes is the bcrypt input limit. bcrypt ignores the bytes
// after it, so a longer password is rejected instead of truncated.
const maxPasswordBytes = 72

// dummyHash is a bcrypt hash, at bcrypt.DefaultCost, of a random password
// that was discarded. Checking a password against it for an unknown agent,
// or one without a hash, takes as long as a real check, so response times
// do not reveal which agent ids exist.
//
// NOTE: the times match only for agents whose hash also has cost 10, as
// HashPassword produces.
const dummyHash = "$2a$10$aVnfjqjO0j1d8IDOqF.sPOvuHYMSls03yY5CFwhs/ThTh62/fRE9G"

// passwordCacheSize bounds the number of cached successful checks.
const passwordCacheSize = 1024

// HashPassword returns the bcrypt hash of pw at bcrypt.DefaultCost, for the
// password_hash of an agent in the directory.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("password is empty: choose a non-empty password")
	}
	if len(pw) > maxPasswordBytes {
		return "", errors.New("password is longer than 72 bytes, the bcrypt limit: choose a shorter one")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	return string(hash), nil
}

// basicVerifier checks HTTP Basic credentials against the directory.
type basicVerifier struct {
	directory func() *agent.Directory
	cache     *passwordCache
}

func newBasicVerifier(directory func() *agent.Directory) *basicVerifier {
	return &basicVerifier{directory: directory, cache: newPasswordCache(passwordCacheSize)}
}

// agentID returns the agent id of valid Basic credentials. The reasons for
// a rejection share one message, so that a caller cannot tell an unknown
// agent from a wrong password.
func (v *basicVerifier) agentID(r *http.Request) (string, error) {
	agentID, password, ok := r.BasicAuth()
	if !ok {
		return "", newAPIError(codeUnauthenticated, msgBasicMalformed)
	}
	rejected := newAPIError(codeUnauthenticated, msgBasicRejected)

	a, found := v.directory().Agent(agentID)
	if !found || a.PasswordHash == "" || len(password) > maxPasswordBytes {
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return "", rejected.withCause(errors.New("agent unknown, without a password hash, or password too long"))
	}

	key := v.cache.key(agentID, password, a.PasswordHash)
	if v.cache.contains(key) {
		return agentID, nil
	}
	if err := bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)); err != nil {
		return "", rejected.withCause(err)
	}
	v.cache.add(key)
	return agentID, nil
}

// passwordCache remembers successful password checks, because a bcrypt
// check at cost 10 takes tens of milliseconds of CPU time (an estimate that
// varies with the CPU). An entry is keyed by the agent id, a digest of the
// password and the hash it matched, so a changed hash in the directory
// misses the cache. The least recently used entry is evicted when the cache
// is full.
type passwordCache struct {
	// secret keys the password digest, so that the digests in memory
	// cannot be matched against precomputed SHA-256 tables.
	secret []byte
	max    int

	mu      sync.Mutex
	entries map[cacheKey]*list.Element
	order   *list.List // front is the most recently used
}

type cacheKey struct {
	agentID  string
	password [sha256.Size]byte
	hash     string
}

func newPasswordCache(maxEntries int) *passwordCache {
	return &passwordCache{
		secret:  []byte(rand.Text()),
		max:     maxEntries,
		entries: make(map[cacheKey]*list.Element),
		order:   list.New(),
	}
}

// key returns the cache key. The password itself is not stored.
func (c *passwordCache) key(agentID, password, hash string) cacheKey {
	mac := hmac.New(sha256.New, c.secret)
	mac.Write([]byte(password))
	k := cacheKey{agentID: agentID, hash: hash}
	copy(k.password[:], mac.Sum(nil))
	return k
}

func (c *passwordCache) contains(k cacheKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok {
		c.order.MoveToFront(e)
	}
	return ok
}

func (c *passwordCache) add(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.entries[k] = c.order.PushFront(k)
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(cacheKey))
	}
}
