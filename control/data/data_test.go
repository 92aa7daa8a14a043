package data

import (
	"errors"
	"testing"

	"github.com/pierhq/pier/control"
)

func TestParseStage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "production"}, {"production", "production"}, {"staging", "staging"}, {"preview", "preview"},
		{"sandbox:alice", "sandbox:alice"}, {"sandbox:a-1", "sandbox:a-1"},
		{"sandbox:", ""}, {"sandbox:Alice", ""}, {"sandbox:-a", ""}, {"prod", ""}, {"sandbox", ""},
	} {
		got, err := ParseStage(tc.in)
		var ve *control.ValidationError
		switch {
		case tc.want == "" && !errors.As(err, &ve):
			t.Errorf("ParseStage(%q) = %q, %v; want a ValidationError", tc.in, got, err)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("ParseStage(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
