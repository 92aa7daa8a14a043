# The cluster CA and the agents' certificates (TLS between every agent and
# on their APIs). Names follow what the agents check: Consul servers
# server.<datacenter>.consul, Nomad server.<region>.nomad and
# client.<region>.nomad, Vault vault.service.consul. Consul clients get
# theirs from the servers (auto_encrypt). Rotating: docs/operations.md.

resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem       = tls_private_key.ca.private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 365 * 5
  allowed_uses          = ["cert_signing", "crl_signing", "digital_signature"]
  subject {
    common_name  = "${var.name} cluster CA"
    organization = "Pier"
  }
}

locals {
  agent_certs = {
    "consul-server" = ["server.pier.consul", "localhost"]
    "nomad-server"  = ["server.global.nomad", "localhost"]
    "nomad-client"  = ["client.global.nomad", "localhost"]
    "vault"         = ["vault.service.consul", "active.vault.service.consul", "localhost"]
  }
}

resource "tls_private_key" "agent" {
  for_each    = local.agent_certs
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "agent" {
  for_each        = local.agent_certs
  private_key_pem = tls_private_key.agent[each.key].private_key_pem
  dns_names       = each.value
  ip_addresses    = ["127.0.0.1"]
  subject {
    common_name = each.value[0]
  }
}

resource "tls_locally_signed_cert" "agent" {
  for_each              = local.agent_certs
  cert_request_pem      = tls_cert_request.agent[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = 24 * 365
  early_renewal_hours   = 24 * 30
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
}
