# Sydney edges.
datacenter = "syd"

client {
  node_pool = "edge"

  # The servers live in Sydney (ap-southeast-2), found by their AWS tags
  # (terraform/modules/control-region).
  server_join {
    retry_join = ["provider=aws region=ap-southeast-2 tag_key=pier-nomad tag_value=server"]
  }

  meta {
    pier_region = "syd"
  }
}
