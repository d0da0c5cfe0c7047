package websocket

import (
	"fmt"
	"log/slog"

	"github.com/lesismal/nbio/logging"
)

// RouteLibraryLogs sends the WebSocket library's own log lines to l: its
// engine start and stop notices at debug level, its warnings and errors at
// theirs. Without it nbio prints to stdout. nbio keeps one logger for the
// whole process, so call this once, before any Server starts.
func RouteLibraryLogs(l *slog.Logger) {
	logging.SetLogger(libraryLogger{l})
}

type libraryLogger struct{ l *slog.Logger }

func (g libraryLogger) Debug(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "lib", "nbio")
}
func (g libraryLogger) Info(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "lib", "nbio")
}
func (g libraryLogger) Warn(format string, v ...any) {
	g.l.Warn(fmt.Sprintf(format, v...), "lib", "nbio")
}
func (g libraryLogger) Error(format string, v ...any) {
	g.l.Error(fmt.Sprintf(format, v...), "lib", "nbio")
}
