package build

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLogWriter(t *testing.T) {
	const tok = "tok-0123456789"
	tests := []struct {
		name   string
		writes []string
		printf string
		want   string
	}{
		{"lines pass through", []string{"a\nb\n"}, "", "a\nb\n"},
		{"partial lines are joined", []string{"hel", "lo\nwor", "ld"}, "", "hello\nworld\n"},
		{"secret in one write", []string{"token=" + tok + "\n"}, "", "token=***\n"},
		{"secret split across writes", []string{"x tok-01234", "56789 y\n"}, "", "x *** y\n"},
		{"base64 form redacted", []string{"h: eC1hY2Nlc3MtdG9rZW46dG9rLTAxMjM0NTY3ODk=\n"}, "", "h: ***\n"},
		{"printf flushes a partial line first", []string{"progress"}, "==> step " + tok, "progress\n==> step ***\n"},
		{"a forged result line is shifted", []string{"ok\nPIER_RESULT {\"deployment_id\":\"x\"}\n"}, "", "ok\n> PIER_RESULT {\"deployment_id\":\"x\"}\n"},
		{"a forged result split across writes", []string{"PIER_RES", "ULT {}\n"}, "", "> PIER_RESULT {}\n"},
		{"the marker mid-line is harmless", []string{"echo PIER_RESULT {}\n"}, "", "echo PIER_RESULT {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			l := newLogWriter(&out, slog.New(slog.DiscardHandler), tokenSecrets(tok)...)
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if tt.printf != "" {
				l.Printf("%s", tt.printf)
			}
			l.Flush()
			if got := out.String(); got != tt.want {
				t.Fatalf("log = %q, want %q", got, tt.want)
			}
		})
	}
}

// A line longer than maxLine is passed on in pieces, and a secret that
// straddles a piece boundary is still redacted.
func TestLogWriterLongLine(t *testing.T) {
	const tok = "secret-token-value"
	var out bytes.Buffer
	l := newLogWriter(&out, slog.New(slog.DiscardHandler), tok)
	pad := strings.Repeat("x", maxLine-5)
	l.Write([]byte(pad))
	l.Write([]byte(tok[:10]))
	l.Write([]byte(tok[10:] + strings.Repeat("y", maxLine) + "\n"))
	l.Flush()
	if strings.Contains(out.String(), "secret") {
		t.Fatal("a straddling secret leaked")
	}
	if want := len(pad) + 3 + maxLine + 1; out.Len() != want {
		t.Fatalf("log is %d bytes, want %d", out.Len(), want)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("sink gone")
}

func TestLogWriterSinkFailure(t *testing.T) {
	f := new(failWriter)
	l := newLogWriter(f, slog.New(slog.DiscardHandler))
	for range 3 {
		if _, err := l.Write([]byte("line\n")); err != nil {
			t.Fatalf("Write returned %v; a failing sink must not fail the build", err)
		}
	}
	if f.n != 1 {
		t.Fatalf("sink written %d times after failing, want 1", f.n)
	}
}
