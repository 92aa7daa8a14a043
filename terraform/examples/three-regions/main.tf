# Pier across three regions: the control plane and edges in Sydney
# (ap-southeast-2), edges in Melbourne (ap-southeast-4) and Singapore
# (ap-southeast-1). After `terraform apply`, docs/operations.md takes it
# from there (ACL bootstrap, Vault init, the Nomad jobs).

provider "aws" {
  region = "ap-southeast-2"
}

provider "aws" {
  alias  = "mel"
  region = "ap-southeast-4"
}

provider "aws" {
  alias  = "sgp"
  region = "ap-southeast-1"
}

locals {
  edge_cidrs = {
    mel = "10.20.0.0/16"
    sgp = "10.30.0.0/16"
  }
}

module "syd" {
  source = "../../modules/control-region"

  name                    = "pier"
  datacenter              = "syd"
  vpc_cidr                = "10.10.0.0/16"
  availability_zones      = ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"]
  ami_id                  = var.ami_ids["syd"]
  edge_region_cidrs       = values(local.edge_cidrs)
  admin_cidrs             = var.admin_cidrs
  control_certificate_arn = var.certificate_arns["syd_control"]
  edge_certificate_arn    = var.certificate_arns["syd"]
}

module "mel" {
  source = "../../modules/edge-region"
  providers = {
    aws         = aws.mel
    aws.control = aws
  }

  name                 = "pier"
  datacenter           = "mel"
  vpc_cidr             = local.edge_cidrs["mel"]
  availability_zones   = ["ap-southeast-4a", "ap-southeast-4b"]
  ami_id               = var.ami_ids["mel"]
  edge_certificate_arn = var.certificate_arns["mel"]
  control              = module.syd
}

module "sgp" {
  source = "../../modules/edge-region"
  providers = {
    aws         = aws.sgp
    aws.control = aws
  }

  name                 = "pier"
  datacenter           = "sgp"
  vpc_cidr             = local.edge_cidrs["sgp"]
  availability_zones   = ["ap-southeast-1a", "ap-southeast-1b"]
  ami_id               = var.ami_ids["sgp"]
  edge_certificate_arn = var.certificate_arns["sgp"]
  control              = module.syd
}
