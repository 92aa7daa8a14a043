package raftkv

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger routes raft's hclog output to logger: raft's chatter (its
// warnings included: a single node "times out" on every start) at debug,
// its errors at error. When the logger would drop all of it, raft gets a
// null logger.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	ctx := context.Background()
	level := hclog.Info
	switch {
	case logger.Enabled(ctx, slog.LevelDebug):
	case logger.Enabled(ctx, slog.LevelError):
		level = hclog.Error
	default:
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      hclogWriter{logger.With("subsystem", "raft")},
		DisableTime: true,
	})
}

// hclogWriter turns each formatted hclog line into one slog record.
type hclogWriter struct{ log *slog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	if bytes.HasPrefix(line, []byte("[ERROR]")) {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, string(line))
	return len(p), nil
}
