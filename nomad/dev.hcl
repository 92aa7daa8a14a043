# Nomad agent settings for a development machine and for the tests
# (tests/testenv/nomad.go adds ports, a name and a data dir on top):
#
#   AWS_CA_BUNDLE= nomad agent -dev -config nomad/dev.hcl
#
# -dev runs a server and a client in one process with in-memory state.
# Builds then run with the raw_exec driver (render jobs/specs with
# Driver: "raw_exec"), which has no isolation: never enable it on a
# production client. Unset AWS_CA_BUNDLE if your environment sets it: the
# agent's AWS fingerprinter fails at start-up on a bundle it cannot load.

bind_addr = "127.0.0.1"

plugin "raw_exec" {
  config {
    enabled = true
  }
}
