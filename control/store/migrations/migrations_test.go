package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/readme.txt":    {Data: []byte("ignored")},
	}
	ms, err := Load(ok, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[0].Name != "0001_init" || ms[0].SQL != "A" || ms[1].Version != 2 {
		t.Errorf("Load = %+v", ms)
	}
	tests := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"gap", fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "expected version 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}}, "expected version 2"},
		{"bad name", fstest.MapFS{"m/init.sql": {}}, "0001_name.sql"},
		{"starts at 2", fstest.MapFS{"m/0002_a.sql": {}}, "expected version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load(tt.fs, "m"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
