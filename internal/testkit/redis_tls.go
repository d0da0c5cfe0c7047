package testkit

import (
	"net"
	"strconv"
	"testing"
)

// StartRedisTLS starts a standalone redis-server that serves TLS on a free
// loopback port with a self-signed certificate, and returns a rediss:// URL
// for it (with skip_verify, as the certificate is the test's own). The
// server also listens in plain text on r.Addr, which only the harness uses
// to see that it is up.
func StartRedisTLS(t testing.TB) (url string, r *RedisServer) {
	t.Helper()
	dir := t.TempDir()
	cert, key := NewSelfSigned(t).WriteFiles(t)
	port, err := freeRedisPort(false)
	if err != nil {
		t.Fatalf("redis: no free port: %v", err)
	}
	tlsPort := strconv.Itoa(port)
	r = startRedisServer(t, dir, "", "--tls-port", tlsPort, "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", cert, "--tls-auth-clients", "no")
	return "rediss://" + net.JoinHostPort("127.0.0.1", tlsPort) + "?skip_verify=true", r
}
