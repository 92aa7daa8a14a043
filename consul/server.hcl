# Consul server agents: three in the control region (Sydney), holding
# Pier's coordination state (active-deployment pointers, readiness keys,
# cutover locks) and the catalog of "pier-edge" instances that every
# cutover waits on. Installed by terraform/modules/control-region (and the
# Vagrantfile) as /etc/consul.d/pier.hcl next to a per-node file with the
# node name, the advertise address, retry_join and the gossip key:
#
#   consul agent -config-file /etc/consul.d/pier.hcl -config-file /etc/consul.d/node.hcl
#
# One Consul datacenter, "pier", spans every region: the edges in Melbourne
# and Singapore run client agents (client.hcl) joined to these servers over
# the private network. Pier's cutover needs one KV and one catalog (an edge
# registers where control counts it), which a WAN-federated datacenter per
# region would not give. docs/operations.md explains the choice.

server           = true
bootstrap_expect = 3
datacenter       = "pier"
data_dir         = "/opt/consul/data"
log_level        = "INFO"

# The HTTP API answers on loopback only, for the processes on this machine;
# anything remote (operators, Nomad servers) uses HTTPS on 8501.
client_addr = "127.0.0.1"
addresses {
  https = "0.0.0.0"
}
ports {
  http     = 8500
  https    = 8501
  grpc     = -1
  grpc_tls = 8503
  dns      = 8600
}

ui_config {
  enabled = true
}

disable_update_check        = true
disable_anonymous_signature = true

# Deny by default. Tokens: Pier control (policies/pier-control.hcl), each
# edge (policies/pier-edge.hcl), each agent (a node identity), operators.
acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = true
}

# TLS between agents (RPC, verified both ways, with server host names
# checked) and for the HTTPS API. Clients get their certificates from the
# servers (auto_encrypt), so only servers hold a key signed by the CA.
tls {
  defaults {
    ca_file         = "/etc/pier/tls/ca.pem"
    cert_file       = "/etc/pier/tls/consul-server.pem"
    key_file        = "/etc/pier/tls/consul-server-key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
  # API callers authenticate with ACL tokens, not client certificates.
  https {
    verify_incoming = false
  }
}

auto_encrypt {
  allow_tls = true
}

# Clients in other regions are tens of milliseconds away: give gossip more
# time before it suspects one, so a slow link is not a dead edge.
gossip_lan {
  probe_timeout  = "2s"
  probe_interval = "4s"
  suspicion_mult = 6
}

# Pier's cutover sessions live for seconds; Consul's minimum is 10s.
session_ttl_min = "10s"

performance {
  raft_multiplier = 1
}

telemetry {
  prometheus_retention_time = "1m"
  disable_hostname          = true
}
