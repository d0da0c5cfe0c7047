package api

import (
	"context"
	"log/slog"
	"strings"

	"github.com/heraldrt/herald/internal/protocol"
)

// LogLevelRequest sets the server's log level; an empty Level only reads it.
type LogLevelRequest struct {
	Level string `json:"level"`
}

// LogLevelResult reports the level before and after the call, in lower case
// ("debug", "info", "warn", "error").
type LogLevelResult struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// logLevel: LogLevelRequest → LogLevelResult. The level applies to this
// node only, until the next configuration reload or restart sets log_level.
func (h *Handler) logLevel(ctx context.Context, req *LogLevelRequest) (any, error) {
	if h.level == nil {
		return nil, protocol.ErrNotAvailable.With("this server's log level cannot change at runtime")
	}
	old := h.level.Level()
	next := old
	if req.Level != "" {
		if err := next.UnmarshalText([]byte(req.Level)); err != nil {
			return nil, protocol.ErrBadRequest.With("level %.32q is not debug, info, warn or error", req.Level)
		}
	}
	if next != old {
		h.level.Set(next)
		// Logged at warn so the change shows whichever way it went.
		h.log.WarnContext(ctx, "log level changed", "old", levelName(old), "new", levelName(next))
	}
	return LogLevelResult{Old: levelName(old), New: levelName(next)}, nil
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }
