package events

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// commitAndRead commits two changes through a store on cfg and checks that
// both were published and that Sessions reads the session back.
func commitAndRead(t *testing.T, cfg Config) {
	t.Helper()
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	defer closeStore(t, s)
	up, _, lastErr := s.Status()
	require.True(t, up, "store up, last error %v", lastErr)

	a := newSimAgent("1001")
	commit(t, s, a.login())
	commit(t, s, a.pause(lunch))
	assert.Equal(t, uint64(2), s.Stats().Published)
	assert.Zero(t, s.Stats().Outboxed)

	sessions, err := s.Sessions(context.Background())
	require.NoError(t, err)
	require.Len(t, sessions, 1)
	assert.JSONEq(t, sessionJSON(t, a.sess), sessionJSON(t, sessions[0]))
}

func TestExternalUserPassword(t *testing.T) {
	srv := newNATSProcess(t)
	srv.args = []string{"--user", "agentd", "--pass", "s3cret"}
	srv.clientOpts = []nats.Option{nats.UserInfo("agentd", "s3cret")}
	srv.start()

	cfg := externalConfig(t, srv.url())
	cfg.Conn.User = "agentd"
	cfg.Conn.Password = "s3cret"
	commitAndRead(t, cfg)
}

func TestExternalToken(t *testing.T) {
	srv := newNATSProcess(t)
	srv.args = []string{"--auth", "t0ken"}
	srv.clientOpts = []nats.Option{nats.Token("t0ken")}
	srv.start()

	cfg := externalConfig(t, srv.url())
	cfg.Conn.Token = "t0ken"
	commitAndRead(t, cfg)
}

func TestExternalWrongTokenGoesToOutbox(t *testing.T) {
	srv := newNATSProcess(t)
	srv.args = []string{"--auth", "t0ken"}
	srv.clientOpts = []nats.Option{nats.Token("t0ken")}
	srv.start()

	cfg := externalConfig(t, srv.url())
	cfg.Conn.Token = "wrong"
	cfg.Conn.ConnectTimeout = 300 * time.Millisecond
	log, _ := newTestLogger()
	s := openStore(t, cfg, log)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	}()

	commit(t, s, newSimAgent("1001").login())
	assert.Equal(t, 1, s.Stats().OutboxDepth)
	require.Eventually(t, func() bool {
		_, _, err := s.Status()
		return err != nil && err.Error() != errNotConnected.Error()
	}, 10*time.Second, 20*time.Millisecond, "status reports the authorization error")
	up, _, lastErr := s.Status()
	assert.False(t, up)
	assert.Contains(t, lastErr.Error(), "Authorization Violation")
}

func TestExternalNKey(t *testing.T) {
	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := user.PublicKey()
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "agentd.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))
	confFile := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(confFile, []byte("authorization { users = [ { nkey: \""+pub+"\" } ] }\n"), 0o600))

	srv := newNATSProcess(t)
	srv.args = []string{"-c", confFile}
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	require.NoError(t, err)
	srv.clientOpts = []nats.Option{nkeyOpt}
	srv.start()

	cfg := externalConfig(t, srv.url())
	cfg.Conn.NKeySeedFile = seedFile
	commitAndRead(t, cfg)
}

func TestExternalMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := newNATSProcess(t)
	srv.args = []string{"--tls", "--tlscert", pki.serverCert, "--tlskey", pki.serverKey,
		"--tlscacert", pki.caCert, "--tlsverify=true"}
	srv.clientOpts = []nats.Option{nats.RootCAs(pki.caCert), nats.ClientCert(pki.clientCert, pki.clientKey)}
	srv.start()

	cfg := externalConfig(t, srv.tlsURL())
	cfg.Conn.TLSCAFile = pki.caCert
	cfg.Conn.TLSCertFile = pki.clientCert
	cfg.Conn.TLSKeyFile = pki.clientKey
	commitAndRead(t, cfg)
}

func TestExternalSeveralURLs(t *testing.T) {
	srv := newNATSProcess(t)
	srv.start()
	down := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))

	cfg := externalConfig(t, down)
	cfg.Conn.URLs = append(cfg.Conn.URLs, srv.url())
	commitAndRead(t, cfg)
}

// testPKI holds PEM files of a CA, a server certificate for 127.0.0.1 and a
// client certificate, all signed by the CA.
type testPKI struct {
	caCert, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "agentd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	pki := testPKI{caCert: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	pki.serverCert, pki.serverKey = issueCert(t, dir, "server", ca, caKey, 2, x509.ExtKeyUsageServerAuth)
	pki.clientCert, pki.clientKey = issueCert(t, dir, "client", ca, caKey, 3, x509.ExtKeyUsageClientAuth)
	return pki
}

func issueCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "agentd test " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, dir, name, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600))
	return path
}
