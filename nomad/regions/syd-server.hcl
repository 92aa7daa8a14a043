# Sydney, the control region: the three Nomad servers. The AWS tags come
# from terraform/modules/control-region.
datacenter = "syd"

server {
  server_join {
    retry_join = ["provider=aws tag_key=pier-nomad tag_value=server"]
  }
}
