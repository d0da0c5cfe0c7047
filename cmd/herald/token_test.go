package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/auth"
)

const tokenSecret = "0123456789abcdef0123456789abcdef"

func tokenVerifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mint runs herald token and returns the token it printed.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, append([]string{"token"}, args...)...)
	if code != exitOK || errOut != "" || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("herald token %s: exit %d: %q %q", strings.Join(args, " "), code, out, errOut)
	}
	return strings.TrimSuffix(out, "\n")
}

func TestTokenConnection(t *testing.T) {
	t.Setenv(secretEnv, "")
	v := tokenVerifier(t, auth.Config{HMACSecret: tokenSecret, Audience: "herald", Issuer: "dev"})
	tok := mint(t, "--user", "alice", "--secret", tokenSecret, "--channels", "news,user:alice", "--channels", "more",
		"--info", `{ "name": "Alice" }`, "--audience", "herald", "--issuer", "dev", "--alg", "HS512")
	c, err := v.VerifyConnection(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "alice" || string(c.Info) != `{"name":"Alice"}` || strings.Join(c.Channels, ",") != "news,user:alice,more" ||
		time.Until(c.ExpiresAt) <= 59*time.Minute || time.Until(c.ExpiresAt) > time.Hour {
		t.Errorf("%+v", c)
	}
	if _, err := v.VerifySubscription(context.Background(), tok); err == nil {
		t.Error("a connection token verified as a subscription token")
	}
}

func TestTokenSubscription(t *testing.T) {
	t.Setenv(secretEnv, tokenSecret)
	v := tokenVerifier(t, auth.Config{HMACSecret: tokenSecret})
	tok := mint(t, "--user", "bob", "--channel", "private:reports", "--ttl", "0")
	s, err := v.VerifySubscription(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if s.UserID != "bob" || s.Channel != "private:reports" || !s.ExpiresAt.IsZero() || s.Info != nil {
		t.Errorf("%+v", s)
	}
	if _, err := v.VerifyConnection(context.Background(), tok); err == nil {
		t.Error("a subscription token verified as a connection token")
	}
	// --secret wins over the environment.
	other := strings.Repeat("s", 32)
	if _, err := v.VerifySubscription(context.Background(), mint(t, "--secret", other, "--channel", "x")); err == nil {
		t.Error("token signed with the environment's secret despite --secret")
	}
}

func TestTokenUsage(t *testing.T) {
	t.Setenv(secretEnv, "")
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"token", "--help"}, exitOK, secretEnv},
		{[]string{"token", "--help"}, exitOK, "--channels"},
		{[]string{"token", "--user", "alice"}, exitUsage, "no secret: give --secret or set " + secretEnv},
		{[]string{"token", "--secret", "short"}, exitUsage, "the secret is 5 bytes, at least 32"},
		{[]string{"token", "--secret", tokenSecret, "--info", "{nope"}, exitUsage, "--info is not JSON"},
		{[]string{"token", "--secret", tokenSecret, "--channels", "ok,bad name"}, exitUsage, `"bad name" is not a valid channel name`},
		{[]string{"token", "--secret", tokenSecret, "--channel", "a b"}, exitUsage, `"a b" is not a valid channel name`},
		{[]string{"token", "--secret", tokenSecret, "--channel", "a", "--channels", "b"}, exitUsage, "not both"},
		{[]string{"token", "--secret", tokenSecret, "--alg", "RS256"}, exitUsage, `algorithm "RS256"`},
		{[]string{"token", "--secret", tokenSecret, "--ttl", "-1h"}, exitUsage, "negative TTL"},
		{[]string{"token", "--secret", tokenSecret, "--ttl", "soon"}, exitUsage, "--ttl"},
		{[]string{"token", "--secret", tokenSecret, "stray"}, exitUsage, `unexpected argument "stray"`},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.contains) {
			t.Errorf("herald %s: exit %d, want %d with %q in output:\n%s%s", strings.Join(c.args, " "), code, c.code, c.contains, stdout, stderr)
		}
		if c.code != exitOK && stdout != "" {
			t.Errorf("herald %s: printed %q on failure", strings.Join(c.args, " "), stdout)
		}
	}
	t.Setenv(secretEnv, "short")
	if code, _, stderr := runCmd(t, "token"); code != exitUsage || !strings.Contains(stderr, "the secret is 5 bytes") {
		t.Errorf("short secret from the environment: exit %d: %s", code, stderr)
	}
}
