package node

import (
	"context"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// armExpiryLocked schedules the session's token deadlines: a refresh push
// (PushRefresh) Config.RefreshBefore ahead of expiry, or half the remaining
// life if that is shorter, and the close at expiry. Caller must hold s.mu.
func (s *Session) armExpiryLocked() {
	exp := s.cred.ExpiresAt
	if exp.IsZero() {
		if s.expiry != nil {
			s.expiry.Stop()
		}
		return
	}
	left := time.Until(exp)
	ask := left - min(s.n.cfg.RefreshBefore, left/2)
	if s.refreshByProxyLocked() {
		ask = left
	}
	s.refreshAsked = false
	if s.expiry == nil {
		s.expiry = time.AfterFunc(ask, s.onExpiryTimer)
		return
	}
	s.expiry.Reset(ask)
}

// onExpiryTimer asks for a fresh token, then closes a session that did not
// send one in time with DisconnectTokenExpired. A one-way session (SSE)
// cannot send one: the push tells its client to reconnect with a fresh
// token before the stream is cut.
func (s *Session) onExpiryTimer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateFinished || s.closing != nil || s.cred.ExpiresAt.IsZero() {
		return
	}
	left := time.Until(s.cred.ExpiresAt)
	if left <= 0 && s.refreshByProxyLocked() {
		go s.proxyRefresh()
		return
	}
	if left <= 0 {
		s.closeLocked(protocol.DisconnectTokenExpired)
		return
	}
	if !s.refreshAsked {
		s.refreshAsked = true
		// Scalars only: this push always encodes.
		frame, _ := protocol.EncodePush(protocol.RefreshPush{Type: protocol.PushRefresh, ExpiresIn: expiresIn(s.cred.ExpiresAt)})
		s.enqueueLocked(Item{Kind: ItemFrame, Push: protocol.PushRefresh, Frame: frame})
	}
	s.expiry.Reset(left)
}

// refresh replaces the session's token with a fresh one for the same user,
// moving its deadlines. The user's info and server-side subscriptions stay
// those of the connect token: they shaped presence and subscriptions that
// already exist.
func (s *Session) refresh(ctx context.Context, req protocol.RefreshRequest) (protocol.RefreshResult, error) {
	if req.Token == "" {
		return protocol.RefreshResult{}, protocol.ErrBadRequest.With("refresh: token required")
	}
	cred, err := s.n.Authenticate(ctx, req.Token)
	if err != nil {
		return protocol.RefreshResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cred.UserID != s.cred.UserID || cred.Reserved != s.cred.Reserved {
		return protocol.RefreshResult{}, protocol.ErrUnauthorized.With("refresh token is for another user")
	}
	s.cred.ExpiresAt = cred.ExpiresAt
	s.armExpiryLocked()
	return protocol.RefreshResult{ExpiresIn: expiresIn(cred.ExpiresAt)}, nil
}

// expiresIn is the whole seconds left until t, rounded up so that a client
// told 0 knows the token never expires; zero for a zero t.
func expiresIn(t time.Time) int {
	if t.IsZero() {
		return 0
	}
	left := time.Until(t)
	if left <= 0 {
		return 1
	}
	return int((left + time.Second - 1) / time.Second)
}
