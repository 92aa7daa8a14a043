output "database_endpoint" {
  description = "PostgreSQL for control's postgres.dsn."
  value       = module.syd.database_endpoint
}

output "artifacts_bucket" {
  description = "S3 bucket for control's s3.bucket."
  value       = module.syd.artifacts_bucket
}

output "edge_load_balancers" {
  description = "Per region: the load balancer the sites' DNS records point at."
  value = {
    mel = module.mel.load_balancer_dns_name
    sgp = module.sgp.load_balancer_dns_name
  }
}

output "ca_cert_pem" {
  description = "The cluster CA for operators' CLIs."
  value       = module.syd.ca_cert_pem
}
