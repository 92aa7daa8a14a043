variable "name" {
  description = "Prefix of every resource name and tag; the same as the control region's."
  type        = string
  default     = "pier"
}

variable "datacenter" {
  description = "Nomad datacenter of this edge region (nomad/regions/<datacenter>-edge.hcl must exist), e.g. \"mel\"."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of this region's VPC; must not overlap the control region's or another edge region's."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones the edges spread over."
  type        = list(string)
}

variable "ami_id" {
  description = "Debian 12 or Ubuntu 24.04 AMI of this region."
  type        = string
}

variable "edge_count" {
  description = "Number of edges in this region."
  type        = number
  default     = 2
}

variable "instance_type" {
  description = "Instance type of the edges."
  type        = string
  default     = "t3.large"
}

variable "edge_certificate_arn" {
  description = "ACM certificate (in this region) for the sites, e.g. *.pier.example.com."
  type        = string
}

variable "control" {
  description = "The control region module's outputs this region joins: vpc_id, vpc_cidr, route_table_ids, region, ssm_prefix, artifacts_bucket_arn."
  type = object({
    vpc_id               = string
    vpc_cidr             = string
    route_table_ids      = list(string)
    region               = string
    ssm_prefix           = string
    artifacts_bucket_arn = string
  })
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
