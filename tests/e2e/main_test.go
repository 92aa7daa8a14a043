package e2e

import (
	"testing"

	"github.com/pierhq/pier/tests/testenv"
)

// TestMain stops the servers testenv started (PostgreSQL, MinIO, the
// HashiCorp agents) once every test has run.
func TestMain(m *testing.M) { testenv.Main(m) }
