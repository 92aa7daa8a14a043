# pier-control: the Vault policy of Pier's control plane (least privilege).
#
# control/secrets/vaulttransit seals environment variables and git tokens
# with the transit key "pier" and opens them again; Rewrap moves old values
# to the newest key version. That is all this token may do with the key: it
# cannot create it (so encrypt cannot create a missing key on the fly), read
# its metadata, rotate, configure, export, back up, trim or delete it.
#
#   vault policy write pier-control vault/pier-control.hcl
#
# For another mount or key name, edit the paths (transit/<op>/<key>).

path "transit/encrypt/pier" {
  capabilities = ["update"]
}

path "transit/decrypt/pier" {
  capabilities = ["update"]
}

path "transit/rewrap/pier" {
  capabilities = ["update"]
}
