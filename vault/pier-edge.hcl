# pier-edge: the Vault policy of processes that only read Pier's secrets
# (an edge decrypting a deployment's runtime environment). Decrypt only:
# no encrypt, rewrap or key management.
#
#   vault policy write pier-edge vault/pier-edge.hcl

path "transit/decrypt/pier" {
  capabilities = ["update"]
}
