# pier-ops: key management for Pier's transit key, kept apart from the
# control plane's token (pier-control.hcl). Attach it to an operator's token,
# or to the set-up step that runs control/secrets/vaulttransit with
# CreateKey.
#
#   vault secrets enable transit                        # once, as an admin
#   vault policy write pier-ops vault/pier-ops.hcl
#   vault write -f transit/keys/pier type=aes256-gcm96  # or CreateKey
#   vault write -f transit/keys/pier/rotate             # new key version
#
# It allows creating the key (as a non-exportable aes256-gcm96 key only),
# reading its metadata (type, versions; no key material), rotating it, and
# setting its minimum versions and auto-rotation period. Left out on
# purpose: export (transit/export/...), backup, trim (which destroys old
# versions for good), delete, and the config flags that would allow them
# (exportable, allow_plaintext_backup, deletion_allowed); grant those by
# hand in an emergency. Re-encrypting stored values after a rotation is done
# with the control plane's rewrap permission.

path "transit/keys/pier" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "type" = ["aes256-gcm96"]
  }
}

path "transit/keys/pier/rotate" {
  capabilities = ["update"]
}

path "transit/keys/pier/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
    "auto_rotate_period"     = []
  }
}
