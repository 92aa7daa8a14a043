output "vpc_cidr" {
  description = "This region's VPC CIDR (the control region admits its agents from it)."
  value       = aws_vpc.this.cidr_block
}

output "load_balancer_dns_name" {
  description = "Point this region's DNS records (latency or geo routing) for the sites here."
  value       = aws_lb.edge.dns_name
}
