package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's profiling endpoints (/debug/pprof/...) on
// Config.PprofAddr, a listener of their own so they are never reachable
// through the public address. It returns a function that stops them; with no
// PprofAddr it does nothing.
func (s *Server) startPprof() (stop func(), err error) {
	if s.cfg.PprofAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("server: pprof listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		s.log.Warn("profiling endpoints listen beyond loopback; they reveal internals and cost CPU when used", "pprof_addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("pprof server failed", "err", err)
		}
	}()
	s.log.Info("profiling endpoints listening", "pprof_addr", ln.Addr().String())
	return func() {
		_ = srv.Close() // profiles in flight are cut: the server is stopping
		<-done
	}, nil
}
