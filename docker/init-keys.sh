#!/bin/sh
# Creates the keys docker-compose.yml mounts: the SFTP server's host key, the bridge's client key,
# and a known_hosts entry so the bridge pins the server's key (no "accept any host key").
set -eu
cd "$(dirname "$0")"
mkdir -p keys
[ -f keys/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f keys/ssh_host_ed25519_key
[ -f keys/client_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -f keys/client_ed25519
echo "sftp $(cat keys/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)" > keys/known_hosts
chmod 600 keys/ssh_host_ed25519_key keys/client_ed25519
echo "keys ready in docker/keys; host key fingerprint: $(ssh-keygen -l -f keys/ssh_host_ed25519_key.pub)"
