package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseN(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		n       int
		project string
		json    bool
		pos     []string
		wantErr bool
	}{
		{"flags first", []string{"--project", "shop", "--json", "a"}, 1, "shop", true, []string{"a"}, false},
		{"flags after", []string{"a", "--project", "shop", "--json"}, 1, "shop", true, []string{"a"}, false},
		{"flags between", []string{"A", "--project=shop", "B", "--json"}, 2, "shop", true, []string{"A", "B"}, false},
		{"dash is positional", []string{"NAME", "-", "--json"}, 2, "", true, []string{"NAME", "-"}, false},
		{"after -- all positional", []string{"--project", "shop", "NAME", "--", "-v", "--json"}, 3, "shop", false, []string{"NAME", "-v", "--json"}, false},
		{"too many", []string{"a", "b", "--json"}, 1, "", true, nil, true},
		{"unknown flag", []string{"a", "--nope"}, 1, "", false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PIER_PROJECT", "")
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			project := fs.String("project", "", "")
			asJSON := fs.Bool("json", false, "")
			err := parseN(fs, tt.args, tt.n)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseN(%q) = nil, want an error", tt.args)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseN(%q): %v", tt.args, err)
			}
			if *project != tt.project || *asJSON != tt.json || !slices.Equal(fs.Args(), tt.pos) {
				t.Errorf("parseN(%q): project %q json %v args %q; want %q %v %q",
					tt.args, *project, *asJSON, fs.Args(), tt.project, tt.json, tt.pos)
			}
		})
	}
}
