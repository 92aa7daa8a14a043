package build

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/pierhq/pier/jobs"
)

// maxLine is the longest line held back waiting for its newline; longer
// output is passed on in pieces.
const maxLine = 64 << 10

// logWriter passes command output and progress lines to the build log a
// line at a time, with every secret replaced by "***". It is safe for
// concurrent use. A failing sink never fails the build: the first error is
// reported to the operator log and later output is dropped.
type logWriter struct {
	mu      sync.Mutex
	w       io.Writer
	logger  *slog.Logger
	buf     []byte
	secrets [][]byte // longest first
	maxSec  int
	failed  bool
	midLine bool // the last emitted chunk did not end a line
}

func newLogWriter(w io.Writer, logger *slog.Logger, secrets ...string) *logWriter {
	l := &logWriter{w: w, logger: logger}
	for _, s := range secrets {
		if s != "" {
			l.secrets = append(l.secrets, []byte(s))
			l.maxSec = max(l.maxSec, len(s))
		}
	}
	sort.Slice(l.secrets, func(i, j int) bool { return len(l.secrets[i]) > len(l.secrets[j]) })
	return l
}

var redacted = []byte("***")

func (l *logWriter) redact(b []byte) []byte {
	for _, s := range l.secrets {
		if bytes.Contains(b, s) {
			b = bytes.ReplaceAll(b, s, redacted)
		}
	}
	return b
}

// Write buffers p and emits every complete line. It never fails.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.redact(l.buf[:i+1]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxLine {
		// Pass a very long line on in pieces, keeping back a tail that may
		// hold the start of a secret.
		b := l.redact(l.buf)
		keep := min(len(b), max(l.maxSec-1, 0))
		l.emit(b[:len(b)-keep])
		l.buf = append([]byte(nil), b[len(b)-keep:]...)
	}
	if len(l.buf) == 0 {
		l.buf = nil
	}
	return len(p), nil
}

// Flush emits a pending partial line, ending it with a newline.
func (l *logWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *logWriter) flushLocked() {
	if len(l.buf) > 0 {
		l.emit(append(l.redact(l.buf), '\n'))
		l.buf = nil
	}
}

// Printf writes one progress line, after any pending partial line.
func (l *logWriter) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	line := fmt.Appendf(nil, format, args...)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	l.emit(l.redact(line))
}

func (l *logWriter) emit(b []byte) {
	if l.failed || len(b) == 0 {
		return
	}
	// A line of the build's that looks like the worker's result line is
	// shifted, so only the worker itself can report a result.
	if !l.midLine && bytes.HasPrefix(b, []byte(jobs.ResultMarker)) {
		b = append([]byte("> "), b...)
	}
	l.midLine = b[len(b)-1] != '\n'
	if _, err := l.w.Write(b); err != nil {
		l.failed = true
		l.logger.Warn("build log sink failed; dropping further build output", "err", err)
	}
}
