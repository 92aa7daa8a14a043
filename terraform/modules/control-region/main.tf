# The control region (Sydney in the example): the Consul, Nomad and Vault
# servers, Nomad clients for control, builds and edges, PostgreSQL (RDS),
# the artifacts bucket (S3), and the cluster's TLS material. Every machine
# boots from templates/user-data.sh.tftpl, which installs the agents and
# the configs of nomad/, consul/ and vault/ from this repository.

data "aws_region" "current" {}

locals {
  ssm_prefix = "/${var.name}/cluster"
  tags       = merge({ "pier-cluster" = var.name }, var.tags)
  repo       = "${path.module}/../../.."

  # The agent configs, from the repository (one source of truth).
  configs = {
    consul_server = file("${local.repo}/consul/server.hcl")
    consul_client = file("${local.repo}/consul/client.hcl")
    nomad_server  = file("${local.repo}/nomad/server.hcl")
    nomad_client  = file("${local.repo}/nomad/client.hcl")
    vault_server  = file("${local.repo}/vault/server.hcl")
    vault_seal    = file("${local.repo}/vault/seal-awskms.hcl")
    firewall      = file("${local.repo}/nomad/builder-firewall.sh")
  }

  # Node kinds: Nomad node pool, count, instance type, region overlay.
  pools = {
    control = { count = var.control_count, type = var.client_instance_type, profile = aws_iam_instance_profile.control.name }
    builds  = { count = var.build_count, type = var.build_instance_type, profile = aws_iam_instance_profile.builds.name }
    edge    = { count = var.edge_count, type = var.client_instance_type, profile = aws_iam_instance_profile.edge.name }
  }
}

# --- Network -------------------------------------------------------------

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = "${var.name}-${var.datacenter}" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = local.tags
}

resource "aws_subnet" "public" {
  count                   = length(var.availability_zones)
  vpc_id                  = aws_vpc.this.id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = true
  tags                    = merge(local.tags, { Name = "${var.name}-${var.datacenter}-public-${count.index}" })
}

resource "aws_subnet" "private" {
  count             = length(var.availability_zones)
  vpc_id            = aws_vpc.this.id
  availability_zone = var.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 100 + count.index)
  tags              = merge(local.tags, { Name = "${var.name}-${var.datacenter}-private-${count.index}" })
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = local.tags
}

resource "aws_nat_gateway" "this" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = local.tags
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = local.tags
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this.id
  }
  tags = local.tags
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  count          = length(aws_subnet.private)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- Security groups -------------------------------------------------------

# Every Pier machine of the region: agents talk to each other freely inside
# it; edge regions reach Consul (RPC 8300, gossip 8301) and Nomad (RPC 4647)
# over the peering; operators reach the HTTPS APIs.
resource "aws_security_group" "cluster" {
  name_prefix = "${var.name}-cluster-"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description = "inside the cluster"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  dynamic "ingress" {
    for_each = length(var.edge_region_cidrs) > 0 ? toset(["tcp", "udp"]) : toset([])
    content {
      description = "consul rpc and gossip from the edge regions"
      from_port   = 8300
      to_port     = 8301
      protocol    = ingress.value
      cidr_blocks = var.edge_region_cidrs
    }
  }

  dynamic "ingress" {
    for_each = length(var.edge_region_cidrs) > 0 ? [1] : []
    content {
      description = "nomad rpc from the edge regions"
      from_port   = 4647
      to_port     = 4647
      protocol    = "tcp"
      cidr_blocks = var.edge_region_cidrs
    }
  }

  dynamic "ingress" {
    for_each = length(var.admin_cidrs) > 0 ? { nomad = 4646, consul = 8501, vault = 8200 } : {}
    content {
      description = "${ingress.key} https api"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.admin_cidrs
    }
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# The edges of this region serve the public on 8080 (behind the NLB).
resource "aws_security_group" "edge_http" {
  name_prefix = "${var.name}-edge-http-"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description = "http from the load balancer (client addresses preserved)"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# The control API on 7070, from the load balancer only.
resource "aws_security_group" "control_http" {
  name_prefix = "${var.name}-control-http-"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description = "control api from the vpc (the load balancer)"
    from_port   = 7070
    to_port     = 7070
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
}

resource "aws_security_group" "db" {
  name_prefix = "${var.name}-db-"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description     = "postgres from the cluster"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_security_group.cluster.id]
  }
}

# --- Storage: PostgreSQL and the artifacts bucket --------------------------

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "aws_db_subnet_group" "pier" {
  name_prefix = "${var.name}-"
  subnet_ids  = aws_subnet.private[*].id
  tags        = local.tags
}

resource "aws_db_instance" "pier" {
  identifier_prefix          = "${var.name}-"
  engine                     = "postgres"
  engine_version             = "15"
  instance_class             = var.db_instance_class
  allocated_storage          = 50
  max_allocated_storage      = 500
  storage_encrypted          = true
  multi_az                   = true
  db_name                    = "pier"
  username                   = "pier"
  password                   = random_password.db.result
  db_subnet_group_name       = aws_db_subnet_group.pier.name
  vpc_security_group_ids     = [aws_security_group.db.id]
  backup_retention_period    = 14
  deletion_protection        = true
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${var.name}-final"
  auto_minor_version_upgrade = true
  tags                       = local.tags
}

resource "aws_s3_bucket" "artifacts" {
  bucket_prefix = "${var.name}-artifacts-"
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# --- Vault auto-unseal -------------------------------------------------------

resource "aws_kms_key" "vault" {
  description         = "${var.name} Vault auto-unseal"
  enable_key_rotation = true
  tags                = local.tags
}

resource "aws_kms_alias" "vault" {
  name          = "alias/pier-vault-unseal"
  target_key_id = aws_kms_key.vault.key_id
}

# --- Secrets every node reads at boot (SSM Parameter Store) -----------------

resource "random_id" "consul_gossip" {
  byte_length = 32
}

resource "random_id" "nomad_gossip" {
  byte_length = 32
}

resource "aws_ssm_parameter" "secret" {
  for_each = {
    "ca.pem"                = tls_self_signed_cert.ca.cert_pem
    "consul-server.pem"     = tls_locally_signed_cert.agent["consul-server"].cert_pem
    "consul-server-key.pem" = tls_private_key.agent["consul-server"].private_key_pem
    "nomad-server.pem"      = tls_locally_signed_cert.agent["nomad-server"].cert_pem
    "nomad-server-key.pem"  = tls_private_key.agent["nomad-server"].private_key_pem
    "nomad-client.pem"      = tls_locally_signed_cert.agent["nomad-client"].cert_pem
    "nomad-client-key.pem"  = tls_private_key.agent["nomad-client"].private_key_pem
    "vault.pem"             = tls_locally_signed_cert.agent["vault"].cert_pem
    "vault-key.pem"         = tls_private_key.agent["vault"].private_key_pem
    "consul-gossip-key"     = random_id.consul_gossip.b64_std
    "nomad-gossip-key"      = random_id.nomad_gossip.b64_std
    "database-password"     = random_password.db.result
  }
  name  = "${local.ssm_prefix}/${each.key}"
  type  = "SecureString"
  tier  = "Advanced"
  value = each.value
  tags  = local.tags
}

# --- Machines ------------------------------------------------------------------

resource "aws_launch_template" "server" {
  name_prefix            = "${var.name}-server-"
  image_id               = var.ami_id
  instance_type          = var.server_instance_type
  vpc_security_group_ids = [aws_security_group.cluster.id]
  iam_instance_profile {
    name = aws_iam_instance_profile.server.name
  }
  metadata_options {
    http_tokens = "required"
  }
  user_data = base64encode(templatefile("${path.module}/templates/user-data.sh.tftpl", {
    kind           = "server"
    datacenter     = var.datacenter
    node_pool      = ""
    region_overlay = file("${local.repo}/nomad/regions/${var.datacenter}-server.hcl")
    aws_region     = data.aws_region.current.name
    control_region = data.aws_region.current.name
    ssm_prefix     = local.ssm_prefix
    configs        = local.configs
  }))
  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-server", "pier-nomad" = "server", "pier-consul" = "server", "pier-vault" = "server" })
  }
}

resource "aws_autoscaling_group" "server" {
  name_prefix         = "${var.name}-server-"
  min_size            = 3
  max_size            = 3
  desired_capacity    = 3
  vpc_zone_identifier = aws_subnet.private[*].id
  launch_template {
    id      = aws_launch_template.server.id
    version = "$Latest"
  }
  # Replace servers one at a time, keeping the quorum (docs/operations.md).
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 66
    }
  }
}

resource "aws_launch_template" "client" {
  for_each      = local.pools
  name_prefix   = "${var.name}-${each.key}-"
  image_id      = var.ami_id
  instance_type = each.value.type
  vpc_security_group_ids = concat([aws_security_group.cluster.id],
    each.key == "edge" ? [aws_security_group.edge_http.id] : [],
  each.key == "control" ? [aws_security_group.control_http.id] : [])
  iam_instance_profile {
    name = each.value.profile
  }
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1 # containers (builds) cannot reach the metadata service
  }
  user_data = base64encode(templatefile("${path.module}/templates/user-data.sh.tftpl", {
    kind           = each.key
    datacenter     = var.datacenter
    node_pool      = each.key
    region_overlay = file("${local.repo}/nomad/regions/${var.datacenter}-${each.key}.hcl")
    aws_region     = data.aws_region.current.name
    control_region = data.aws_region.current.name
    ssm_prefix     = local.ssm_prefix
    configs        = local.configs
  }))
  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-${each.key}", "pier-nomad" = "client", "pier-consul" = "client" })
  }
}

resource "aws_autoscaling_group" "client" {
  for_each            = local.pools
  name_prefix         = "${var.name}-${each.key}-"
  min_size            = each.value.count
  max_size            = each.value.count * 2
  desired_capacity    = each.value.count
  vpc_zone_identifier = each.key == "edge" ? aws_subnet.public[*].id : aws_subnet.private[*].id
  target_group_arns   = each.key == "edge" ? [aws_lb_target_group.edge.arn] : (each.key == "control" ? [aws_lb_target_group.control.arn] : [])
  launch_template {
    id      = aws_launch_template.client[each.key].id
    version = "$Latest"
  }
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }
}

# --- Load balancers ------------------------------------------------------------

resource "aws_lb" "edge" {
  name_prefix        = "pedge-"
  load_balancer_type = "network"
  subnets            = aws_subnet.public[*].id
  tags               = local.tags
}

resource "aws_lb_target_group" "edge" {
  name_prefix = "pedge-"
  port        = 8080
  protocol    = "TCP"
  vpc_id      = aws_vpc.this.id
  health_check {
    protocol = "HTTP"
    path     = "/healthz"
    interval = 10
  }
}

resource "aws_lb_listener" "edge" {
  for_each          = { "80" = "TCP", "443" = "TLS" }
  load_balancer_arn = aws_lb.edge.arn
  port              = tonumber(each.key)
  protocol          = each.value
  certificate_arn   = each.value == "TLS" ? var.edge_certificate_arn : null
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.edge.arn
  }
}

resource "aws_lb" "control" {
  name_prefix        = "pctl-"
  load_balancer_type = "network"
  internal           = false
  subnets            = aws_subnet.public[*].id
  tags               = local.tags
}

resource "aws_lb_target_group" "control" {
  name_prefix = "pctl-"
  port        = 7070
  protocol    = "TCP"
  vpc_id      = aws_vpc.this.id
  health_check {
    protocol = "HTTP"
    path     = "/healthz"
    interval = 10
  }
}

resource "aws_lb_listener" "control" {
  load_balancer_arn = aws_lb.control.arn
  port              = 443
  protocol          = "TLS"
  certificate_arn   = var.control_certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.control.arn
  }
}
