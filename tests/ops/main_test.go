// Package ops tests how Pier is operated: the Nomad job specs validated
// and planned by a real Nomad agent, and the edge, build and cron jobs run
// there; the Consul, Nomad and Vault agent configurations of nomad/,
// consul/ and vault/ loaded by the real agents (with TLS and ACLs on);
// the ACL policies' least privilege; the Terraform modules' formatting and
// structure; the Vagrant provisioning script through shellcheck.
//
// The agents come from tests/testenv (built once per machine by
// tests/tools/build.sh). A test whose agent or tool is missing is skipped,
// or fails with PIER_REQUIRE_SERVERS=1.
package ops

import (
	"testing"

	"github.com/pierhq/pier/tests/testenv"
)

// TestMain stops the servers testenv started once every test has run.
func TestMain(m *testing.M) { testenv.Main(m) }
