package hosts

import (
	"testing"

	"github.com/pierhq/pier/edge/coord"
)

func TestTable(t *testing.T) {
	var tb Table
	if _, ok := tb.Project("www.example.test"); ok || tb.Loaded() {
		t.Fatal("empty table routes")
	}
	tb.Set([]coord.DomainRoute{{Domain: "www.example.test", ProjectName: "Shop"}, {Domain: "example.test", ProjectName: "shop"}})
	tests := []struct {
		host string
		want string
	}{
		{"www.example.test", "shop"},
		{"WWW.Example.Test:8443", "shop"},
		{"example.test.", "shop"},
		{"other.example.test", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := tb.Project(tt.host)
		if got != tt.want || ok != (tt.want != "") || tb.Verified(tt.host) != ok {
			t.Errorf("Project(%q) = %q, %v; want %q", tt.host, got, ok, tt.want)
		}
	}
	tb.Set(nil)
	if tb.Verified("www.example.test") {
		t.Error("removed domain still verified")
	}
}
