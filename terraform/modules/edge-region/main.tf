# An edge region (Melbourne or Singapore in the example): edges only. Their
# Nomad clients join the control region's Nomad servers (this region is a
# Nomad datacenter, node pool "edge"), their Consul clients join the one
# Consul datacenter, over a VPC peering with the control region. The
# pier-edge system job places an edge on every machine here as it joins.

locals {
  tags = merge({ "pier-cluster" = var.name, "pier-region" = var.datacenter }, var.tags)
  repo = "${path.module}/../../.."
}

data "aws_region" "current" {}

data "aws_caller_identity" "control" {
  provider = aws.control
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

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = local.tags
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# The private link to the control region: agents' RPC and gossip (TLS and
# gossip encryption on top), and S3 reads from the edges.
resource "aws_vpc_peering_connection" "control" {
  vpc_id        = aws_vpc.this.id
  peer_vpc_id   = var.control.vpc_id
  peer_region   = var.control.region
  peer_owner_id = data.aws_caller_identity.control.account_id
  tags          = merge(local.tags, { Name = "${var.name}-${var.datacenter}-to-control" })
}

resource "aws_vpc_peering_connection_accepter" "control" {
  provider                  = aws.control
  vpc_peering_connection_id = aws_vpc_peering_connection.control.id
  auto_accept               = true
  tags                      = local.tags
}

resource "aws_route" "to_control" {
  route_table_id            = aws_route_table.public.id
  destination_cidr_block    = var.control.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.control.id
}

resource "aws_route" "from_control" {
  provider                  = aws.control
  count                     = length(var.control.route_table_ids)
  route_table_id            = var.control.route_table_ids[count.index]
  destination_cidr_block    = var.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.control.id
}

# --- Security ------------------------------------------------------------------

resource "aws_security_group" "edge" {
  name_prefix = "${var.name}-${var.datacenter}-edge-"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags

  ingress {
    description = "sites, from the load balancer (client addresses preserved)"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description = "consul gossip from the other agents"
    from_port   = 8301
    to_port     = 8301
    protocol    = "tcp"
    cidr_blocks = [var.control.vpc_cidr, var.vpc_cidr]
  }

  ingress {
    description = "consul gossip from the other agents (udp)"
    from_port   = 8301
    to_port     = 8301
    protocol    = "udp"
    cidr_blocks = [var.control.vpc_cidr, var.vpc_cidr]
  }

  ingress {
    description = "nomad client api (logs, exec) from the servers"
    from_port   = 4646
    to_port     = 4646
    protocol    = "tcp"
    cidr_blocks = [var.control.vpc_cidr]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# Edges: find the servers, read their secrets, read the artifacts. Nothing
# else.
data "aws_iam_policy_document" "edge" {
  statement {
    sid       = "CloudAutoJoin"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeTags"]
    resources = ["*"]
  }
  statement {
    sid     = "Secrets"
    actions = ["ssm:GetParameter"]
    resources = [for s in ["ca.pem", "nomad-client.pem", "nomad-client-key.pem", "consul-gossip-key"] :
    "arn:aws:ssm:${var.control.region}:*:parameter${var.control.ssm_prefix}/${s}"]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.control.artifacts_bucket_arn, "${var.control.artifacts_bucket_arn}/*"]
  }
}

resource "aws_iam_role" "edge" {
  name_prefix        = "${var.name}-${var.datacenter}-edge-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "edge" {
  name   = "pier-edge"
  role   = aws_iam_role.edge.id
  policy = data.aws_iam_policy_document.edge.json
}

resource "aws_iam_instance_profile" "edge" {
  name_prefix = "${var.name}-${var.datacenter}-edge-"
  role        = aws_iam_role.edge.name
}

# --- Edges -------------------------------------------------------------------------

resource "aws_launch_template" "edge" {
  name_prefix            = "${var.name}-${var.datacenter}-edge-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.edge.id]
  iam_instance_profile {
    name = aws_iam_instance_profile.edge.name
  }
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  user_data = base64encode(templatefile("${path.module}/../control-region/templates/user-data.sh.tftpl", {
    kind           = "edge"
    datacenter     = var.datacenter
    node_pool      = "edge"
    region_overlay = file("${local.repo}/nomad/regions/${var.datacenter}-edge.hcl")
    aws_region     = data.aws_region.current.name
    control_region = var.control.region
    ssm_prefix     = var.control.ssm_prefix
    configs = {
      consul_server = ""
      consul_client = file("${local.repo}/consul/client.hcl")
      nomad_server  = ""
      nomad_client  = file("${local.repo}/nomad/client.hcl")
      vault_server  = ""
      vault_seal    = ""
      firewall      = ""
    }
  }))
  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-${var.datacenter}-edge", "pier-nomad" = "client", "pier-consul" = "client" })
  }
}

resource "aws_autoscaling_group" "edge" {
  name_prefix         = "${var.name}-${var.datacenter}-edge-"
  min_size            = var.edge_count
  max_size            = var.edge_count * 2
  desired_capacity    = var.edge_count
  vpc_zone_identifier = aws_subnet.public[*].id
  target_group_arns   = [aws_lb_target_group.edge.arn]
  launch_template {
    id      = aws_launch_template.edge.id
    version = "$Latest"
  }
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }
}

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
