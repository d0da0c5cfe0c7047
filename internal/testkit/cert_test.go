package testkit

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A server with the certificate, loaded from its files, is trusted by a
// client that trusts Pool, at 127.0.0.1.
func TestSelfSigned(t *testing.T) {
	c := NewSelfSigned(t)
	certFile, keyFile := c.WriteFiles(t)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	res, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client trusting Pool: %v", err)
	}
	res.Body.Close()
	if _, err := http.Get(srv.URL); err == nil {
		t.Error("a client trusting the system roots accepted the test certificate")
	}
}
