# Consul agent configuration for Pier's integration tests
# (tests/testenv/consul.go): one server that elects itself at once and keeps
# its state (KV, sessions, catalog) in -data-dir, so restarting it loses
# nothing. The test harness adds -node, -data-dir and random ports
# (-http-port, -server-port, -serf-lan-port, -serf-wan-port).
#
#   consul agent -config-file consul/test.hcl -node pier-test -data-dir /tmp/c \
#     -http-port 8500 -server-port 8300 -serf-lan-port 8301 -serf-wan-port 8302

server           = true
bootstrap_expect = 1
bind_addr        = "127.0.0.1"
client_addr      = "127.0.0.1"
advertise_addr   = "127.0.0.1"
log_level        = "INFO"

disable_update_check        = true
disable_anonymous_signature = true
ui_config { enabled = false }
connect { enabled = false }

# The coordination conformance suite (edge/coord/coordtest) expires
# sessions with a 1s TTL; Consul's default minimum is 10s.
session_ttl_min = "1s"

ports {
  dns      = -1
  grpc     = -1
  grpc_tls = -1
  https    = -1
}

# Every test connects from 127.0.0.1, with many blocking queries at once.
limits {
  http_max_conns_per_client = 1000
}

# Single node: elect and re-elect quickly (Consul's -dev uses 52/35/20ms).
performance { raft_multiplier = 1 }
consul {
  raft {
    election_timeout     = "100ms"
    heartbeat_timeout    = "100ms"
    leader_lease_timeout = "50ms"
  }
  server { health_interval = "10ms" }
  coordinate { update_period = "100ms" }
}
