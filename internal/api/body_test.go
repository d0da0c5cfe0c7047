package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

func TestDecodeBodyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       uint32
	}{
		{"empty", "", 0},
		{"object", `{"channel":"a","data":{"x":1}}`, 0},
		{"unknown field", `{"chanel":"a"}`, protocol.ErrBadRequest.Code},
		{"two objects", `{"channel":"a"}{"channel":"b"}`, protocol.ErrBadRequest.Code},
		{"trailing garbage", `{"channel":"a"} x`, protocol.ErrBadRequest.Code},
		{"not JSON", `channel=a`, protocol.ErrBadRequest.Code},
		{"wrong type", `{"channel":1}`, protocol.ErrBadRequest.Code},
		{"too large", `{"channel":"` + strings.Repeat("a", 2000) + `"}`, protocol.ErrMessageTooLarge.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req protocol.PublishRequest
			err := decodeBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)), 1<<10, &req)
			if got := errCode(err); got != tc.code {
				t.Errorf("error %v, want code %d", err, tc.code)
			}
		})
	}
}

// errCode is the protocol code of err, 0 for nil and 1 for an error
// without one.
func errCode(err error) uint32 {
	if err == nil {
		return 0
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return 1
	}
	return pe.Code
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDecodeBody feeds hostile HTTP request bodies to decodeBody: it never
// panics, reads no more than the bound (plus the one byte that tells it the
// bound was passed), accepts nothing larger, and every failure carries a
// protocol code a client can act on: 107 for a malformed body, 114 for one
// too large.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"channel":"a","data":{"x":1}}`, `{"channel":"a","data":1}{}`, `{"chanel":"a"}`,
		`{"channel":"a","tags":{"k":"v"},"idempotency_key":"k"}`, `[1,2]`, `{"data":"\ud800"}`,
		`{"channel":"` + strings.Repeat("a", 300) + `"}`, "\xff\xfe", `{"data":` + strings.Repeat("[", 100) + `}`,
	} {
		f.Add([]byte(s))
	}
	const maxBytes = 256
	f.Fuzz(func(t *testing.T, body []byte) {
		src := &countingReader{r: bytes.NewReader(body)}
		var req protocol.PublishRequest
		err := decodeBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", src), maxBytes, &req)
		if src.n > maxBytes+1 {
			t.Fatalf("read %d bytes of a body bounded at %d", src.n, maxBytes)
		}
		switch code := errCode(err); code {
		case 0:
			if len(body) > maxBytes {
				t.Fatalf("accepted a body of %d bytes, bound %d", len(body), maxBytes)
			}
			if req.Data != nil && !json.Valid(req.Data) {
				t.Fatalf("accepted data that is not JSON: %q", req.Data)
			}
		case protocol.ErrBadRequest.Code:
		case protocol.ErrMessageTooLarge.Code:
			if len(body) <= maxBytes {
				t.Fatalf("a body of %d bytes refused as larger than %d: %v", len(body), maxBytes, err)
			}
		default:
			t.Fatalf("error %v carries code %d, want 107 or 114", err, code)
		}
	})
}
