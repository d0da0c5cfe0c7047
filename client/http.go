package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// httpCall posts params as JSON to the client endpoint of method (POST
// /publish, /history, /presence, /presence_stats) and decodes the answer
// into out. The same commands as WebSocket, for SSE and polling clients.
func (c *Client) httpCall(ctx context.Context, method string, params, out any) error {
	body, err := protocol.Marshal(params)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", method, err)
	}
	resp, err := c.do(ctx, c.hc, nil, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	})
	if err != nil {
		var r *endReason
		switch {
		case answered(err):
			return err
		case errors.As(err, &r):
			return r.err // GetToken failed
		}
		return fmt.Errorf("client: %s: %w", method, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s: decode answer: %w", method, err)
	}
	return nil
}

// statusError is an HTTP failure whose body was not a Herald error: a proxy
// in between answered, most likely.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("client: HTTP %d: %.200s", e.status, e.body)
}

// answered reports whether err is the server's (or a proxy's) answer to a
// request, rather than a failure to get one.
func answered(err error) bool {
	var e *Error
	var se *statusError
	return errors.As(err, &e) || errors.As(err, &se)
}

// responseError turns a non-200 response into an *Error from its JSON body
// ({"error": {"code", "message"}}), or a *statusError when it has none.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != 0 {
		return body.Error
	}
	return &statusError{status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
}

// httpEndReason classifies a failed stream or poll request: permanent when
// the server refused the client's credentials, or answered a status that a
// retry would get again; otherwise worth retrying after a backoff.
func httpEndReason(err error) *endReason {
	var r *endReason
	if errors.As(err, &r) {
		return r // GetToken failed: already classified
	}
	r = &endReason{err: err}
	var e *Error
	var se *statusError
	switch {
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrTokenExpired):
		// Refused credentials, or an expired token that no fresh one
		// replaced (the request was retried with one if it could be).
		r.permanent = true
	case errors.As(err, &e):
	case errors.As(err, &se):
		r.permanent = se.status >= 400 && se.status < 500 && se.status != http.StatusRequestTimeout && se.status != http.StatusTooManyRequests
	}
	return r
}

// pollAnswer is the answer of GET /poll.
type pollAnswer struct {
	Publications []wirePublication `json:"publications"`
	Next         string            `json:"next"`
	Recovered    bool              `json:"recovered"`
	Unrecovered  []string          `json:"unrecovered"`
}

// poll makes one GET /poll for subs (in canonical channel order) from since
// ("" for "from now"), waiting up to timeout on the server.
func (c *Client) poll(ctx context.Context, subs []*Subscription, since string, timeout time.Duration) (*pollAnswer, error) {
	channels := make([]string, len(subs))
	for i, s := range subs {
		channels[i] = s.channel
	}
	q := url.Values{"channel": channels}
	if since != "" {
		q.Set("since", since)
	}
	secs := int(timeout / time.Second)
	if secs > 0 {
		q.Set("timeout", strconv.Itoa(secs))
		// The server answers within timeout; the margin covers the network.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+15*time.Second)
		defer cancel()
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	resp, err := c.do(ctx, c.streamHC, subs, func() (*http.Request, error) {
		q["sub_token"] = c.subTokenList(subs)
		return http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/poll?"+q.Encode(), nil)
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a pollAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("client: poll answer: %w", err)
	}
	if _, err := parsePositionsList(a.Next, len(channels)); err != nil {
		return nil, fmt.Errorf("client: poll answer: next %q: %w", a.Next, err)
	}
	return &a, nil
}
