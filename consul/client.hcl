# Consul client agents: one on every machine that runs Pier or Nomad
# clients, in every region (Sydney control, build and edge nodes; the
# Melbourne and Singapore edges). Pier talks to the agent on its own
# machine over loopback HTTP; the agent talks to the servers (server.hcl)
# over TLS. Installed as /etc/consul.d/pier.hcl next to a per-node file
# (node name, advertise address, retry_join, gossip key, agent token):
#
#   consul agent -config-file /etc/consul.d/pier.hcl -config-file /etc/consul.d/node.hcl

server     = false
datacenter = "pier"
data_dir   = "/opt/consul/data"
log_level  = "INFO"

# Loopback only: an edge's membership session is bound to the health check
# this agent runs against the edge, so the edge must talk to its own agent.
client_addr = "127.0.0.1"
ports {
  http     = 8500
  https    = -1
  grpc     = -1
  grpc_tls = -1
  dns      = 8600
}

disable_update_check        = true
disable_anonymous_signature = true

acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = true
}

# RPC to the servers over TLS, checking that the other end holds a server
# certificate for this datacenter; this agent's own certificate comes from
# the servers (auto_encrypt).
tls {
  defaults {
    ca_file         = "/etc/pier/tls/ca.pem"
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}

auto_encrypt {
  tls = true
}

# The same gossip timing as the servers (server.hcl): edges are far away.
gossip_lan {
  probe_timeout  = "2s"
  probe_interval = "4s"
  suspicion_mult = 6
}

telemetry {
  prometheus_retention_time = "1m"
  disable_hostname          = true
}
