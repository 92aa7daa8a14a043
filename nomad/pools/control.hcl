# nomad node pool apply nomad/pools/control.hcl
node_pool "control" {
  description = "Pier control plane: the pier-control service job"
  meta {
    owner = "pier"
  }
}
