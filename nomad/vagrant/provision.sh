#!/usr/bin/env bash
# nomad/vagrant/provision.sh: provisions the Vagrant development VM (see
# the Vagrantfile) with the stack of a Pier region, from the repository
# mounted at /vagrant: Consul (consul/server.hcl), Nomad as server and
# client (nomad/server.hcl, nomad/client.hcl), Vault (vault/server.hcl),
# PostgreSQL and MinIO; TLS from a CA made here; ACLs bootstrapped; Pier's
# policies, namespaces and node pools loaded; a token per role written to
# /etc/pier/dev.env. Idempotent: `vagrant provision` runs it again.
set -euo pipefail

readonly repo=/vagrant
readonly ip=${PIER_DEV_IP:-127.0.0.1}
readonly tls=/etc/pier/tls
readonly state=/etc/pier/dev.env
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*"; }

# --- Packages ------------------------------------------------------------
log "packages"
apt-get update -q
apt-get install -y -q curl gnupg jq openssl ca-certificates postgresql docker.io iptables
if [ ! -f /usr/share/keyrings/hashicorp.gpg ]; then
  curl -fsSL https://apt.releases.hashicorp.com/gpg | gpg --dearmor -o /usr/share/keyrings/hashicorp.gpg
fi
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "deb [signed-by=/usr/share/keyrings/hashicorp.gpg] https://apt.releases.hashicorp.com $codename main" \
  >/etc/apt/sources.list.d/hashicorp.list
apt-get update -q
apt-get install -y -q consul=1.19.2-1 nomad=1.10.0-1 vault=1.16.3-1
if [ ! -x /usr/local/bin/minio ]; then
  curl -fsSL -o /usr/local/bin/minio https://dl.min.io/server/minio/release/linux-amd64/minio
  chmod 0755 /usr/local/bin/minio
fi

# --- TLS: a CA and one certificate per agent, names as the agents check --
log "tls"
install -d -m 0755 "$tls"
if [ ! -f "$tls/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=Pier dev CA" -keyout "$tls/ca-key.pem" -out "$tls/ca.pem"
fi
issue() { # issue NAME SAN...
  local name=$1 san="DNS:localhost,IP:127.0.0.1,IP:$ip"
  shift
  local dns
  for dns in "$@"; do san="$san,DNS:$dns"; done
  [ -f "$tls/$name.pem" ] && return 0
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$tls/$name-key.pem" -out "$tls/$name.csr"
  openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
    -days 825 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san") \
    -out "$tls/$name.pem"
  rm -f "$tls/$name.csr"
}
issue consul-server server.pier.consul
issue nomad-server server.global.nomad client.global.nomad
issue vault vault.service.consul
cp "$tls/nomad-server.pem" "$tls/nomad-client.pem"
cp "$tls/nomad-server-key.pem" "$tls/nomad-client-key.pem"
chmod 0644 "$tls"/*.pem
chmod 0640 "$tls"/*-key.pem
cp "$tls/ca.pem" /usr/local/share/ca-certificates/pier-dev-ca.crt
update-ca-certificates >/dev/null

touch "$state"
chmod 0600 "$state"
# remember NAME VALUE: keep a value across runs in $state.
remember() { grep -q "^$1=" "$state" || printf '%s=%s\n' "$1" "$2" >>"$state"; }
recall() { sed -n "s/^$1=//p" "$state"; }
remember CONSUL_MANAGEMENT_TOKEN "$(cat /proc/sys/kernel/random/uuid)"
remember NOMAD_MANAGEMENT_TOKEN "$(cat /proc/sys/kernel/random/uuid)"
remember CONSUL_GOSSIP_KEY "$(consul keygen)"
remember MINIO_ROOT_PASSWORD "$(openssl rand -hex 16)"
remember POSTGRES_PASSWORD "$(openssl rand -hex 16)"

# --- Consul: the production server config, one server --------------------
log "consul"
install -d -m 0755 /etc/consul.d /opt/consul/data
rm -f /etc/consul.d/consul.hcl
cp "$repo/consul/server.hcl" /etc/consul.d/pier.hcl
cat >/etc/consul.d/node.hcl <<NODE
node_name        = "pier-dev"
bootstrap_expect = 1
bind_addr        = "$ip"
advertise_addr   = "$ip"
encrypt          = "$(recall CONSUL_GOSSIP_KEY)"
acl {
  tokens {
    initial_management = "$(recall CONSUL_MANAGEMENT_TOKEN)"
    agent              = "$(recall CONSUL_MANAGEMENT_TOKEN)"
  }
}
NODE
chown -R consul:consul /etc/consul.d /opt/consul
chgrp consul "$tls/consul-server-key.pem"
systemctl enable --now consul
export CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=$tls/ca.pem
CONSUL_HTTP_TOKEN=$(recall CONSUL_MANAGEMENT_TOKEN)
export CONSUL_HTTP_TOKEN
until consul members >/dev/null 2>&1; do sleep 1; done

# --- Nomad: server and client in one agent -------------------------------
log "nomad"
install -d -m 0755 /etc/nomad.d /opt/nomad/data
rm -f /etc/nomad.d/nomad.hcl
cp "$repo/nomad/server.hcl" /etc/nomad.d/10-server.hcl
cp "$repo/nomad/client.hcl" /etc/nomad.d/20-client.hcl
cat >/etc/nomad.d/30-node.hcl <<NODE
name      = "pier-dev"
bind_addr = "0.0.0.0"
advertise {
  http = "$ip"
  rpc  = "$ip"
  serf = "$ip"
}
server {
  bootstrap_expect = 1
}
client {
  servers = ["127.0.0.1:4647"]
}
# One agent is both: the certificate names server and client.
tls {
  cert_file = "$tls/nomad-server.pem"
  key_file  = "$tls/nomad-server-key.pem"
}
vault {
  address = "https://127.0.0.1:8200"
}
NODE
systemctl enable --now nomad
export NOMAD_ADDR=https://127.0.0.1:4646 NOMAD_CACERT=$tls/ca.pem
until curl -fsS --cacert "$tls/ca.pem" "$NOMAD_ADDR/v1/status/leader" | grep -q :; do sleep 1; done
curl -fsS --cacert "$tls/ca.pem" -X POST "$NOMAD_ADDR/v1/acl/bootstrap" \
  -d "{\"BootstrapSecret\":\"$(recall NOMAD_MANAGEMENT_TOKEN)\"}" >/dev/null 2>&1 || true
NOMAD_TOKEN=$(recall NOMAD_MANAGEMENT_TOKEN)
export NOMAD_TOKEN

# --- Vault ---------------------------------------------------------------
log "vault"
install -d -m 0755 /etc/vault.d
install -d -m 0700 -o vault -g vault /opt/vault/data
rm -f /etc/vault.d/vault.hcl
cp "$repo/vault/server.hcl" /etc/vault.d/pier.hcl
cat >/etc/vault.d/node.hcl <<NODE
api_addr     = "https://$ip:8200"
cluster_addr = "https://$ip:8201"
NODE
chown -R vault:vault /etc/vault.d
chgrp vault "$tls/vault-key.pem"
systemctl enable --now vault
export VAULT_ADDR=https://127.0.0.1:8200 VAULT_CACERT=$tls/ca.pem
until curl -s --cacert "$tls/ca.pem" -o /dev/null "$VAULT_ADDR/v1/sys/health"; do sleep 1; done
if [ "$(vault status -format=json | jq -r .initialized)" = false ]; then
  init=$(vault operator init -key-shares=1 -key-threshold=1 -format=json)
  remember VAULT_UNSEAL_KEY "$(jq -r '.unseal_keys_b64[0]' <<<"$init")"
  remember VAULT_ROOT_TOKEN "$(jq -r .root_token <<<"$init")"
fi
if [ "$(vault status -format=json | jq -r .sealed)" = true ]; then
  vault operator unseal "$(recall VAULT_UNSEAL_KEY)" >/dev/null
fi
VAULT_TOKEN=$(recall VAULT_ROOT_TOKEN)
export VAULT_TOKEN
until vault status >/dev/null 2>&1; do sleep 1; done
vault secrets list -format=json | jq -e '."transit/"' >/dev/null || vault secrets enable transit
vault read transit/keys/pier >/dev/null 2>&1 || vault write -f transit/keys/pier type=aes256-gcm96
for p in pier-control pier-edge pier-ops; do
  vault policy write "$p" "$repo/vault/$p.hcl"
done
remember VAULT_PIER_CONTROL_TOKEN "$(vault token create -policy=pier-control -period=768h -field=token)"

# --- Pier's policies, namespaces, node pools and tokens --------------------
log "pier policies"
for p in pier-control pier-edge; do
  consul acl policy read -name "$p" >/dev/null 2>&1 ||
    consul acl policy create -name "$p" -rules "@$repo/consul/policies/$p.hcl" >/dev/null
done
grep -q '^CONSUL_PIER_EDGE_TOKEN=' "$state" ||
  remember CONSUL_PIER_EDGE_TOKEN "$(consul acl token create -policy-name pier-edge -format=json | jq -r .SecretID)"
grep -q '^CONSUL_PIER_CONTROL_TOKEN=' "$state" ||
  remember CONSUL_PIER_CONTROL_TOKEN "$(consul acl token create -policy-name pier-control -format=json | jq -r .SecretID)"

for ns in pier pier-builds; do nomad namespace apply "$repo/nomad/namespaces/$ns.hcl" >/dev/null; done
for pool in control builds edge; do nomad node pool apply "$repo/nomad/pools/$pool.hcl" >/dev/null; done
for p in pier-control pier-deploy pier-readonly; do
  nomad acl policy apply -description "Pier: $p" "$p" "$repo/nomad/acl/$p.policy.hcl" >/dev/null
done
grep -q '^NOMAD_PIER_CONTROL_TOKEN=' "$state" ||
  remember NOMAD_PIER_CONTROL_TOKEN "$(nomad acl token create -name pier-control -policy pier-control -json | jq -r .SecretID)"
grep -q '^NOMAD_PIER_DEPLOY_TOKEN=' "$state" ||
  remember NOMAD_PIER_DEPLOY_TOKEN "$(nomad acl token create -name pier-deploy -policy pier-deploy -json | jq -r .SecretID)"

# --- PostgreSQL and MinIO ----------------------------------------------------
log "postgres and minio"
pg_password=$(recall POSTGRES_PASSWORD)
runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='pier'" | grep -q 1 ||
  runuser -u postgres -- psql -qc "CREATE ROLE pier LOGIN PASSWORD '$pg_password'"
runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_database WHERE datname='pier'" | grep -q 1 ||
  runuser -u postgres -- createdb -O pier pier
remember PIER_POSTGRES_DSN "postgres://pier:$pg_password@127.0.0.1:5432/pier?sslmode=disable"

id minio >/dev/null 2>&1 || useradd --system --home /var/lib/minio --create-home --shell /usr/sbin/nologin minio
cat >/etc/systemd/system/minio.service <<UNIT
[Unit]
Description=MinIO (Pier's object store in the dev VM)
After=network-online.target
[Service]
User=minio
Environment=MINIO_ROOT_USER=pier
Environment=MINIO_ROOT_PASSWORD=$(recall MINIO_ROOT_PASSWORD)
Environment=MINIO_BROWSER=off
ExecStart=/usr/local/bin/minio server --quiet --address 127.0.0.1:9000 /var/lib/minio/data
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now minio

log "done: addresses and tokens are in $state (root only)"
