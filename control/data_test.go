package control

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestValidateDataItem: every bad item is a *ValidationError naming the
// field.
func TestValidateDataItem(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", MaxDataValueBytes) + `"`)
	tests := []struct {
		name  string
		item  DataItem
		field string // "" = valid
	}{
		{"valid", DataItem{Key: "user:1", Value: json.RawMessage(`{"a":1}`), Labels: []string{"vip"}}, ""},
		{"null value", DataItem{Key: "k", Value: json.RawMessage(`null`)}, ""},
		{"empty key", DataItem{Key: "", Value: json.RawMessage(`1`)}, "key"},
		{"long key", DataItem{Key: strings.Repeat("k", MaxDataKeyBytes+1), Value: json.RawMessage(`1`)}, "key"},
		{"NUL in key", DataItem{Key: "a\x00b", Value: json.RawMessage(`1`)}, "key"},
		{"invalid UTF-8 key", DataItem{Key: "a\xffb", Value: json.RawMessage(`1`)}, "key"},
		{"no value", DataItem{Key: "k"}, "value"},
		{"value too large", DataItem{Key: "k", Value: big}, "value"},
		{"value not JSON", DataItem{Key: "k", Value: json.RawMessage(`{`)}, "value"},
		{"too many labels", DataItem{Key: "k", Value: json.RawMessage(`1`), Labels: []string{"a", "b", "c", "d", "e", "f"}}, "labels"},
		{"empty label", DataItem{Key: "k", Value: json.RawMessage(`1`), Labels: []string{""}}, "labels"},
		{"long label", DataItem{Key: "k", Value: json.RawMessage(`1`), Labels: []string{strings.Repeat("l", MaxDataLabelBytes+1)}}, "labels"},
		{"duplicate label", DataItem{Key: "k", Value: json.RawMessage(`1`), Labels: []string{"a", "a"}}, "labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateDataItem(&tt.item)
			var ve *ValidationError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("ValidateDataItem = %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &ve) || ve.Field != tt.field):
				t.Errorf("ValidateDataItem = %v, want a ValidationError on %q", err, tt.field)
			}
		})
	}
}

func TestDataStage(t *testing.T) {
	for _, tc := range []struct {
		d    Deployment
		want string
	}{
		{Deployment{Environment: Production}, "production"},
		{Deployment{Environment: Staging, Alias: "staging"}, "staging"},
		{Deployment{Environment: Preview, Alias: "feature-x"}, "preview"},
		{Deployment{Environment: Sandbox, Alias: "sandbox-alice"}, "sandbox:alice"},
	} {
		if got := DataStage(&tc.d); got != tc.want {
			t.Errorf("DataStage(%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
