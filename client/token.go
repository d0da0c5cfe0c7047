package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// useToken returns the connection token for a connection or request,
// fetching a fresh one from GetToken first when the one held is stale (none
// yet, or the last session ended). fresh reports that it was fetched by this
// call: the server refusing it as expired would refuse the next one too.
func (c *Client) useToken(ctx context.Context) (tok string, fresh bool, err error) {
	if c.cfg.GetToken == nil {
		return c.cfg.Token, false, nil
	}
	if tok, stale := c.heldToken(); !stale {
		return tok, false, nil
	}
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	defer func() { <-c.fetching }()
	// Another request may have fetched one while this one waited.
	if tok, stale := c.heldToken(); !stale {
		return tok, false, nil
	}
	tok, err = c.getToken(ctx)
	return tok, err == nil, err
}

func (c *Client) heldToken() (tok string, stale bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, c.tokenStale
}

// fetchToken gets a fresh connection token from GetToken, whatever the one
// held: the server asked for a refresh, or refused it as expired.
func (c *Client) fetchToken(ctx context.Context) (string, error) {
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.fetching }()
	return c.getToken(ctx)
}

// getToken calls GetToken and keeps its token. Caller holds c.fetching.
func (c *Client) getToken(ctx context.Context) (string, error) {
	tok, err := c.cfg.GetToken(ctx)
	if err != nil {
		return "", fmt.Errorf("client: GetToken: %w", err)
	}
	c.mu.Lock()
	c.token, c.tokenStale = tok, false
	c.mu.Unlock()
	return tok, nil
}

// tokenFailure is how a session ends when GetToken failed: for good when
// the application said the user may not connect (ErrUnauthorized).
func tokenFailure(err error) *endReason {
	return &endReason{reason: "connection token", err: err, permanent: errors.Is(err, ErrUnauthorized)}
}

// subTokens makes each of subs that has a GetToken hold a fresh
// subscription token, fetching the stale ones. A subscription whose
// GetToken fails with ErrUnauthorized is refused with that error; any other
// failure is reported to the subscription and returned, for the session to
// end and be retried with backoff.
func (c *Client) subTokens(ctx context.Context, subs []*Subscription) error {
	for _, s := range subs {
		if s.cfg.GetToken == nil {
			continue
		}
		c.mu.Lock()
		stale, gen := s.tokenStale, s.gen.Load()
		c.mu.Unlock()
		if !stale {
			continue
		}
		tok, err := s.cfg.GetToken(ctx, s.channel)
		c.mu.Lock()
		if err == nil {
			s.token, s.tokenStale = tok, false
			c.mu.Unlock()
			continue
		}
		err = fmt.Errorf("client: GetToken of subscription %s: %w", s.channel, err)
		if errors.Is(err, ErrUnauthorized) {
			s.refuseLocked(gen, err)
			c.mu.Unlock()
			continue
		}
		if ctx.Err() == nil {
			s.errorLocked(err)
		}
		c.mu.Unlock()
		return &endReason{reason: "subscription token", err: err}
	}
	return nil
}

// subTokenList lists the subscription tokens subs hold, for the sub_token
// parameters of a stream or poll.
func (c *Client) subTokenList(subs []*Subscription) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range subs {
		if s.token != "" {
			out = append(out, s.token)
		}
	}
	return out
}

// do sends the request build makes (build is called again for a retry, so
// it must read the subscription tokens of subs afresh) with the connection
// token. When the server answers that a token expired, do fetches fresh
// ones, the connection token and those of subs, and sends it once more. A
// non-200 answer becomes its error (an *Error or a *statusError); a
// failure of GetToken is an *endReason.
func (c *Client) do(ctx context.Context, hc *http.Client, subs []*Subscription, build func() (*http.Request, error)) (*http.Response, error) {
	tok, _, err := c.useToken(ctx)
	if err != nil {
		return nil, tokenFailure(err)
	}
	for retried := false; ; retried = true {
		req, err := build()
		if err != nil {
			return nil, err
		}
		c.setHeaders(req, tok)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		err = responseError(resp)
		resp.Body.Close()
		if retried || !errors.Is(err, ErrTokenExpired) || !c.canRefresh(subs) {
			return nil, err
		}
		// A poll, stream or command that fails on an expired token did
		// nothing on the server: sending it again is safe.
		if c.cfg.GetToken != nil {
			if tok, err = c.fetchToken(ctx); err != nil {
				return nil, tokenFailure(err)
			}
		}
		c.mu.Lock()
		for _, s := range subs {
			s.tokenStale = true
		}
		c.mu.Unlock()
		if err := c.subTokens(ctx, subs); err != nil {
			return nil, err
		}
	}
}

// canRefresh reports whether any token a request of subs carries can be
// replaced by a fresh one.
func (c *Client) canRefresh(subs []*Subscription) bool {
	if c.cfg.GetToken != nil {
		return true
	}
	for _, s := range subs {
		if s.cfg.GetToken != nil {
			return true
		}
	}
	return false
}

// setHeaders adds Config.Header and the connection token to req.
func (c *Client) setHeaders(req *http.Request, token string) {
	for k, vs := range c.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}
