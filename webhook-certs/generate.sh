#!/usr/bin/env bash
# A CA and a serving certificate for the webhook, for local use and for installs without
# cert-manager. SANs: the in-cluster Service (hashroll.hashroll.svc[.cluster.local]),
# 127.0.0.1 and localhost. Output: webhook-certs/out/{ca.crt,ca.key,tls.crt,tls.key}.
# Existing files are kept (delete out/ to make new ones).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
ns=${HASHROLL_NAMESPACE:-hashroll}
mkdir -p "$out"
if [ -f "$out/tls.crt" ] && [ -f "$out/tls.key" ] && [ -f "$out/ca.crt" ]; then
  echo "webhook-certs: keeping the certificates in $out"
  exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=hashroll-webhook-ca" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
cat > "$out/san.cnf" <<CNF
[req]
distinguished_name = dn
[dn]
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:hashroll.$ns.svc,DNS:hashroll.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1
CNF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=hashroll.$ns.svc" -keyout "$out/tls.key" -out "$out/tls.csr" -config "$out/san.cnf" 2>/dev/null
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 825 -extfile "$out/san.cnf" -extensions ext -out "$out/tls.crt" 2>/dev/null
rm -f "$out/tls.csr" "$out/san.cnf" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/tls.crt"
echo "webhook-certs: wrote CA and serving certificate to $out"
