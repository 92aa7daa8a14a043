variable "name" {
  description = "Prefix of every resource name and tag, e.g. \"pier\"."
  type        = string
  default     = "pier"
}

variable "datacenter" {
  description = "Nomad datacenter of this region (nomad/regions/<datacenter>-*.hcl must exist), e.g. \"syd\"."
  type        = string
  default     = "syd"
}

variable "vpc_cidr" {
  description = "CIDR of the control region's VPC; edge regions must not overlap it."
  type        = string
  default     = "10.10.0.0/16"
}

variable "availability_zones" {
  description = "Three availability zones of the region, one server of each kind in each."
  type        = list(string)
}

variable "ami_id" {
  description = "Debian 12 or Ubuntu 24.04 AMI for every machine."
  type        = string
}

variable "server_instance_type" {
  description = "Instance type of the three servers (Consul, Nomad and Vault servers share them)."
  type        = string
  default     = "t3.medium"
}

variable "control_count" {
  description = "Nomad clients in the \"control\" node pool (one pier-control instance each)."
  type        = number
  default     = 3
}

variable "build_count" {
  description = "Nomad clients in the \"builds\" node pool."
  type        = number
  default     = 2
}

variable "edge_count" {
  description = "Edges in this region (node pool \"edge\")."
  type        = number
  default     = 2
}

variable "client_instance_type" {
  description = "Instance type of control and edge clients."
  type        = string
  default     = "t3.large"
}

variable "build_instance_type" {
  description = "Instance type of build clients (builds get 1 CPU and 2 GB each by default)."
  type        = string
  default     = "c6i.xlarge"
}

variable "db_instance_class" {
  description = "RDS instance class of Pier's PostgreSQL."
  type        = string
  default     = "db.t4g.medium"
}

variable "edge_region_cidrs" {
  description = "CIDRs of the edge regions' VPCs: their Consul and Nomad clients reach the servers from there."
  type        = list(string)
  default     = []
}

variable "admin_cidrs" {
  description = "Who may reach the Nomad, Consul and Vault HTTPS APIs and UIs (operators, CI)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "control_certificate_arn" {
  description = "ACM certificate of the control API's host name (the load balancer terminates TLS)."
  type        = string
}

variable "edge_certificate_arn" {
  description = "ACM certificate for the sites, e.g. *.pier.example.com (the edge load balancer terminates TLS)."
  type        = string
}
