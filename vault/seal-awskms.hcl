# Auto-unseal with AWS KMS: a restarted Vault server unseals itself, so a
# node replacement needs no operator with key shares. The key and the
# instance role that may use it come from terraform/modules/control-region.
# Without this file Vault uses Shamir shares (the Vagrant VM does).
seal "awskms" {
  region     = "ap-southeast-2"
  kms_key_id = "alias/pier-vault-unseal"
}
