# nomad node pool apply nomad/pools/edge.hcl
node_pool "edge" {
  description = "Pier edges: the pier-edge system job only"
  meta {
    owner = "pier"
  }
}
