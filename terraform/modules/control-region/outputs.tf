output "vpc_id" {
  description = "The control region's VPC, for the edge regions' peering."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "The control region's VPC CIDR."
  value       = aws_vpc.this.cidr_block
}

output "route_table_ids" {
  description = "Route tables the edge regions add their routes to."
  value       = [aws_route_table.private.id, aws_route_table.public.id]
}

output "region" {
  description = "AWS region of the control plane (the edge regions' retry_join looks for the servers there)."
  value       = data.aws_region.current.name
}

output "artifacts_bucket" {
  description = "S3 bucket holding builds (content-addressed blobs and manifests)."
  value       = aws_s3_bucket.artifacts.bucket
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket, for the edge regions' read-only policy."
  value       = aws_s3_bucket.artifacts.arn
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (host:port) for control's postgres.dsn."
  value       = aws_db_instance.pier.endpoint
}

output "ssm_prefix" {
  description = "SSM Parameter Store path holding the TLS material and gossip keys every node reads at boot."
  value       = local.ssm_prefix
}

output "ca_cert_pem" {
  description = "The cluster CA: operators' CLIs trust it (NOMAD_CACERT, CONSUL_CACERT, VAULT_CACERT)."
  value       = tls_self_signed_cert.ca.cert_pem
}

output "server_security_group_id" {
  description = "Security group of the servers."
  value       = aws_security_group.cluster.id
}
