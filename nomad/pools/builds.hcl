# nomad node pool apply nomad/pools/builds.hcl
node_pool "builds" {
  description = "Pier builds (pier-build dispatches) and scheduled functions; never an edge"
  meta {
    owner = "pier"
  }
}
