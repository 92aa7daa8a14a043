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

func TestStageURL(t *testing.T) {
	tests := []struct {
		env, branch string
		flat        bool
		want        string
	}{
		{"production", "", false, "https://shop.pier.test"},
		{"staging", "", false, "https://staging.shop.pier.test"},
		{"staging", "", true, "https://staging--shop.pier.test"},
		{"sandbox:alice", "", true, "https://sandbox-alice--shop.pier.test"},
		{"preview", "feature/x", false, "https://feature-x.shop.pier.test"},
		{"preview", "feature/x", true, "https://feature-x--shop.pier.test"},
	}
	for _, tt := range tests {
		got, err := stageURL("https://shop.pier.test", tt.flat, tt.env, tt.branch)
		if err != nil || got != tt.want {
			t.Errorf("stageURL(%s, flat %v) = %q, %v; want %q", tt.env, tt.flat, got, err, tt.want)
		}
	}
	if _, err := stageURL("https://shop.pier.test", false, "preview", ""); err == nil {
		t.Error("a preview without a branch has no stable URL")
	}
}
