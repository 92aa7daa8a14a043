package control

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the per-project data store (env.DATA in server code).
const (
	// MaxDataKeyBytes bounds a key.
	MaxDataKeyBytes = 512
	// MaxDataValueBytes bounds one value, as JSON.
	MaxDataValueBytes = 256 << 10
	// MaxDataLabels bounds the labels of one item; MaxDataLabelBytes one label.
	MaxDataLabels     = 5
	MaxDataLabelBytes = 128
	// MaxDataList bounds one DataList page.
	MaxDataList = 1000
)

// DataScope is one namespace of the data store: a project's stage. Items
// of one scope are never visible from another, so a preview cannot read
// or clobber production's data.
type DataScope struct {
	ProjectID string
	// Stage is Production, Staging, Preview, or SandboxPrefix+name (each
	// sandbox has its own data); see DataStage.
	Stage string
}

// DataStage is the data-store stage of a deployment: its environment,
// with a sandbox's name (from its alias) kept apart from other sandboxes.
func DataStage(d *Deployment) string {
	if d.Environment == Sandbox {
		return SandboxPrefix + strings.TrimPrefix(d.Alias, "sandbox-")
	}
	return d.Environment
}

// DataItem is one key of the data store.
type DataItem struct {
	Key string `json:"key"`
	// Value is any JSON value, at most MaxDataValueBytes.
	Value json.RawMessage `json:"value"`
	// Labels are secondary keys the item is listed under (DataQuery.Label),
	// at most MaxDataLabels of at most MaxDataLabelBytes each.
	Labels []string `json:"labels,omitempty"`
	// ExpiresAt, when set, is when the item stops existing (TTL).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DataQuery selects items of one scope: keys starting with Prefix and,
// when Label is set, carrying that label; keys after After (the paging
// cursor), in byte order of the key, at most Limit (<= 0 or above
// MaxDataList: MaxDataList). Expired items never show.
type DataQuery struct {
	Prefix string
	Label  string
	After  string
	Limit  int
}

// DataStore is the store's part for the per-project data store.
type DataStore interface {
	// DataGet returns the item key of scope; a missing or expired one
	// wraps ErrNotFound.
	DataGet(ctx context.Context, scope DataScope, key string) (*DataItem, error)
	// DataSet creates or replaces the item (value, labels, expiry) and
	// sets UpdatedAt (written back). An unknown project wraps ErrNotFound.
	DataSet(ctx context.Context, scope DataScope, item *DataItem) error
	// DataDelete removes a key, reporting whether it existed (and had not
	// expired).
	DataDelete(ctx context.Context, scope DataScope, key string) (bool, error)
	// DataList returns the items q selects, ordered by key.
	DataList(ctx context.Context, scope DataScope, q DataQuery) ([]DataItem, error)
	// PruneData deletes the items expired at now, returning how many.
	PruneData(ctx context.Context, now time.Time) (int64, error)
}

// ValidateDataItem checks item against the data store's rules; the error
// is a *ValidationError.
func ValidateDataItem(item *DataItem) error {
	if err := ValidateDataKey("key", item.Key); err != nil {
		return err
	}
	if len(item.Value) == 0 {
		return Invalid("value", "a value is required (any JSON value; null to store null)")
	}
	if len(item.Value) > MaxDataValueBytes {
		return Invalid("value", "%d bytes is larger than the limit of %d bytes (as JSON)", len(item.Value), MaxDataValueBytes)
	}
	if !json.Valid(item.Value) {
		return Invalid("value", "not valid JSON")
	}
	if len(item.Labels) > MaxDataLabels {
		return Invalid("labels", "at most %d labels, got %d", MaxDataLabels, len(item.Labels))
	}
	seen := map[string]bool{}
	for _, l := range item.Labels {
		if l == "" || len(l) > MaxDataLabelBytes || !utf8.ValidString(l) || strings.ContainsRune(l, 0) {
			return Invalid("labels", "a label is 1 to %d bytes of UTF-8 without NUL, not %q", MaxDataLabelBytes, l)
		}
		if seen[l] {
			return Invalid("labels", "label %q given twice", l)
		}
		seen[l] = true
	}
	return nil
}

// ValidateDataKey checks a key (or a prefix, with field "prefix", which
// may be empty).
func ValidateDataKey(field, key string) error {
	if (key == "" && field == "key") || len(key) > MaxDataKeyBytes || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return Invalid(field, "a key is 1 to %d bytes of UTF-8 without NUL", MaxDataKeyBytes)
	}
	return nil
}
