// Package pionlog sends the pion libraries' logs (TURN, WebRTC) to slog.
package pionlog

import (
	"bufio"
	"io"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// Factory returns a pion logger factory that writes pion's warnings and
// errors to logger, one record per line, each prefixed with prefix.
func Factory(logger *slog.Logger, prefix string) logging.LoggerFactory {
	return &logging.DefaultLoggerFactory{Writer: lineLogger{logger, prefix}, DefaultLogLevel: logging.LogLevelWarn, ScopeLevels: map[string]logging.LogLevel{}}
}

type lineLogger struct {
	log    *slog.Logger
	prefix string
}

func (l lineLogger) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			l.log.Warn(l.prefix + line)
		}
	}
	return len(p), nil
}

var _ io.Writer = lineLogger{}
