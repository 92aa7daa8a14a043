# Vault server: three in the control region (Sydney), integrated storage
# (raft), TLS on the listener. Pier uses Vault for one thing, transit
# encryption of environment variables with the key "pier"
# (pier-control.hcl, pier-ops.hcl). Installed by
# terraform/modules/control-region (and the Vagrantfile) as
# /etc/vault.d/pier.hcl next to seal-awskms.hcl and a per-node file
# (node_id, api_addr, cluster_addr, retry_join):
#
#   vault server -config /etc/vault.d

ui            = true
disable_mlock = true # integrated storage: mlock would pin the whole raft database in memory
log_level     = "info"

storage "raft" {
  path = "/opt/vault/data"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"

  tls_cert_file   = "/etc/pier/tls/vault.pem"
  tls_key_file    = "/etc/pier/tls/vault-key.pem"
  tls_min_version = "tls12"

  telemetry {
    unauthenticated_metrics_access = false
  }
}

telemetry {
  prometheus_retention_time = "1m"
  disable_hostname          = true
}
