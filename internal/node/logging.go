package node

import "log/slog"

// logger is the session's logger: the node's, with the client and user ids
// and the transport on every line. It is built on the first line the session logs and kept,
// so an idle session that never logs holds no handler of its own, and a
// session that logs does not rebuild its attributes per line. It takes no
// lock: sessions log from paths that hold s.mu and from paths that do not.
func (s *Session) logger() *slog.Logger {
	if l := s.log.Load(); l != nil {
		return l
	}
	var user string
	u := s.logUser.Load()
	if u != nil {
		user = *u
	}
	l := s.n.log.With("client", s.id, "user", user, "transport", s.t.Name())
	if s.log.CompareAndSwap(nil, l) && s.logUser.Load() != u {
		// setLogUser ran meanwhile: l names the previous user, so it must
		// not be kept, though it serves this one line.
		s.log.CompareAndSwap(l, nil)
	}
	return l
}

// setLogUser records the user the session's log lines name, and drops a
// logger built for the previous one. Connect calls it when the credentials
// change.
func (s *Session) setLogUser(user string) {
	if user == "" && s.logUser.Load() == nil {
		return
	}
	s.logUser.Store(&user)
	s.log.Store(nil)
}
