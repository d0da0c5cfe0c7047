package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte(testSecret), []byte(`{"events":[]}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, time.Minute, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		secret, body string
		header       string
		at           time.Time
	}{
		"other body":   {testSecret, `{"events":[1]}`, h, now},
		"other secret": {"another-secret-of-16", string(body), h, now},
		"too old":      {testSecret, string(body), h, now.Add(2 * time.Minute)},
		"no v1":        {testSecret, string(body), "t=1800000000", now},
		"garbage":      {testSecret, string(body), "v1=zz,t=x", now},
	} {
		if err := Verify([]byte(c.secret), c.header, []byte(c.body), time.Minute, c.at); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Receivers rotating secrets may list several signatures.
	if err := Verify(secret, "t=1800000000,v1=00,"+h[len("t=1800000000,"):], body, 0, now); err != nil {
		t.Errorf("second v1: %v", err)
	}
}
