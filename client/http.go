package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/heraldrt/herald/internal/protocol"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	c.setHeaders(req)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s: decode answer: %w", method, err)
	}
	return nil
}

func (c *Client) setHeaders(req *http.Request) {
	for k, vs := range c.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
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
	r := &endReason{err: err}
	var e *Error
	var se *statusError
	switch {
	case errors.As(err, &e):
		r.permanent = e.Code == CodeUnauthorized || e.Code == CodeTokenExpired
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

// poll makes one GET /poll for channels (in canonical order) from since
// ("" for "from now"), waiting up to timeout on the server.
func (c *Client) poll(ctx context.Context, channels []string, since string, timeout time.Duration) (*pollAnswer, error) {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/poll?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	c.setHeaders(req)
	resp, err := c.streamHC.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(resp)
	}
	var a pollAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("client: poll answer: %w", err)
	}
	if _, err := parsePositionsList(a.Next, len(channels)); err != nil {
		return nil, fmt.Errorf("client: poll answer: next %q: %w", a.Next, err)
	}
	return &a, nil
}
