# One instance role per kind of machine, each with what its processes
# need: cloud auto-join (ec2:DescribeInstances), its secrets from SSM, and
# its share of the artifacts bucket: control reads and writes, builds
# write, edges only read. Servers may also use the Vault unseal key.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  ssm_arn = "arn:aws:ssm:${data.aws_region.current.name}:*:parameter${local.ssm_prefix}"
  # SSM parameters each kind reads.
  secrets = {
    server  = ["ca.pem", "consul-server.pem", "consul-server-key.pem", "nomad-server.pem", "nomad-server-key.pem", "vault.pem", "vault-key.pem", "consul-gossip-key", "nomad-gossip-key"]
    control = ["ca.pem", "nomad-client.pem", "nomad-client-key.pem", "consul-gossip-key"]
    builds  = ["ca.pem", "nomad-client.pem", "nomad-client-key.pem", "consul-gossip-key"]
    edge    = ["ca.pem", "nomad-client.pem", "nomad-client-key.pem", "consul-gossip-key"]
  }
  s3_actions = {
    server  = []
    control = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
    builds  = [] # builds get control's upload credentials in their job; they cannot reach the metadata service
    edge    = ["s3:GetObject", "s3:ListBucket"]
  }
}

data "aws_iam_policy_document" "node" {
  for_each = local.secrets

  statement {
    sid       = "CloudAutoJoin"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeTags"]
    resources = ["*"]
  }

  statement {
    sid       = "Secrets"
    actions   = ["ssm:GetParameter"]
    resources = [for s in each.value : "${local.ssm_arn}/${s}"]
  }

  dynamic "statement" {
    for_each = length(local.s3_actions[each.key]) > 0 ? [1] : []
    content {
      sid       = "Artifacts"
      actions   = local.s3_actions[each.key]
      resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "server" ? [1] : []
    content {
      sid       = "VaultUnseal"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
      resources = [aws_kms_key.vault.arn]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each           = local.secrets
  name_prefix        = "${var.name}-${each.key}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "node" {
  for_each = local.secrets
  name     = "pier-${each.key}"
  role     = aws_iam_role.node[each.key].id
  policy   = data.aws_iam_policy_document.node[each.key].json
}

resource "aws_iam_instance_profile" "server" {
  name_prefix = "${var.name}-server-"
  role        = aws_iam_role.node["server"].name
}

resource "aws_iam_instance_profile" "control" {
  name_prefix = "${var.name}-control-"
  role        = aws_iam_role.node["control"].name
}

resource "aws_iam_instance_profile" "builds" {
  name_prefix = "${var.name}-builds-"
  role        = aws_iam_role.node["builds"].name
}

resource "aws_iam_instance_profile" "edge" {
  name_prefix = "${var.name}-edge-"
  role        = aws_iam_role.node["edge"].name
}
