# ACL policy for Pier's control plane (edge/coord/consulkv on the control side):
# cutover locks, pointers, announcements, draining edges, and reading the pool.
#   consul acl policy create -name pier-control -rules @consul/policies/pier-control.hcl

key_prefix "pier/" {
  policy = "write"
}

# Cutover sessions are created on the node of the agent control talks to.
session_prefix "" {
  policy = "write"
}

service "pier-edge" {
  policy = "read"
}

node_prefix "" {
  policy = "read"
}
