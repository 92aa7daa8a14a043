package api

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
)

func TestQueryLimit(t *testing.T) {
	tests := []struct {
		query    string
		def, max int
		want     int
		bad      bool
	}{
		{"", 50, 1000, 50, false},
		{"limit=7", 50, 1000, 7, false},
		{"limit=1000", 0, 1000, 1000, false},
		{"limit=1001", 0, 1000, 0, true},
		{"limit=5000", 0, 0, 5000, false},
		{"limit=0", 0, 0, 0, true},
		{"limit=-3", 0, 0, 0, true},
		{"limit=ten", 0, 1000, 0, true},
	}
	for _, tt := range tests {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("GET", "/x?"+tt.query, nil)
		got, err := queryLimit(c, tt.def, tt.max)
		var ve *control.ValidationError
		if tt.bad != (err != nil) || (err != nil && !errors.As(err, &ve)) || got != tt.want {
			t.Errorf("queryLimit(%q, %d, %d) = %d, %v; want %d, error %v (a ValidationError)", tt.query, tt.def, tt.max, got, err, tt.want, tt.bad)
		}
	}
}
