# ACL policy for a Pier edge (edge/coord/consulkv on the edge side): watch the
# pointers and announcements, write its readiness and membership keys,
# register itself as the service "pier-edge" with its health check, and bind
# its membership session to that check.
#   consul acl policy create -name pier-edge -rules @consul/policies/pier-edge.hcl

key_prefix "pier/" {
  policy = "read"
}

key_prefix "pier/edges/" {
  policy = "write"
}

key_prefix "pier/deployments/" {
  policy = "write"
}

# HTTPS for custom domains (edge/certs): certificates, keys and ACME state
# one edge obtains and every edge reads, and the issuance locks.
key_prefix "pier/tls/" {
  policy = "write"
}

# Membership sessions are created on the edge's local agent's node.
session_prefix "" {
  policy = "write"
}

service "pier-edge" {
  policy = "write"
}

# RegisterEdge waits on the catalog's view of the edge's check.
node_prefix "" {
  policy = "read"
}
