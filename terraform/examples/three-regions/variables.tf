variable "ami_ids" {
  description = "Debian 12 AMI per region: syd, mel, sgp."
  type        = map(string)
}

variable "certificate_arns" {
  description = "ACM certificates: syd_control (the API host), and syd, mel, sgp (the sites' wildcard, one per region)."
  type        = map(string)
}

variable "admin_cidrs" {
  description = "Operators' and CI's addresses, for the Nomad, Consul and Vault APIs."
  type        = list(string)
  default     = []
}
