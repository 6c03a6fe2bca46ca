#!/bin/sh
# gen.sh rebuilds the certificate fixtures (*.in) with OpenSSL, so that the
# parser is tested against certificates another implementation produced.
# The keys are thrown away. Rebuilding changes every fixture, so afterwards
# run `go test -run TestGolden -update` and review the golden diff.
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = ca
[ca]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
preserve = yes
[any]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[machine]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:vcsa1.lab.test, DNS:vcsa1, IP:192.0.2.10, email:admin@lab.test, URI:https://vcsa1.lab.test/
[sts]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid
[plain]
basicConstraints = CA:FALSE
CNF
: >"$work/index.txt"

# ca NAME SUBJ EXT START END SERIAL [SIGNER]: issue a certificate; without
# SIGNER it is self-signed.
ca() {
	openssl req -new -newkey rsa:2048 -nodes -utf8 -multivalue-rdn -keyout "$work/$1.key" \
		-subj "$2" -out "$work/$1.csr" 2>/dev/null
	echo "$6" >"$work/serial"
	if [ $# -ge 7 ]; then
		signer="-cert $work/$7.pem -keyfile $work/$7.key"
	else
		signer="-selfsign -keyfile $work/$1.key"
	fi
	# shellcheck disable=SC2086
	openssl ca -batch -notext -utf8 -multivalue-rdn -config "$work/ca.cnf" -extensions "$3" \
		-startdate "$4" -enddate "$5" $signer -in "$work/$1.csr" -out "$work/$1.pem" 2>/dev/null
}

ca root '/OU=VMware Engineering/O=vcsa1.lab.test/ST=California/C=US/DC=local/DC=vsphere/CN=CA' \
	root 20190406115719Z 20290406115719Z 00C3A1F4E2D1B0
ca machine '/C=US/CN=vcsa1.lab.test' machine 20240101000000Z 20260101000000Z 1B root
ca sts '/CN=ssoserverSign' sts 20180818175452Z 20200818175452Z 7F01 root
ca special "$(printf '/C=US/O=Lab, Inc. <test>/OU=Ops+CN=Caf\303\251 #1 /emailAddress=ops@lab.test')" \
	plain 20250101000000Z 20350101000000Z 01 root

cp "$work/root.pem" vmca-root.in
cp "$work/special.pem" special-name.in
# A Lookup Service sslTrust: the DER as one base64 line.
sed '/-----/d' "$work/machine.pem" | tr -d '\n' >machine-ssltrust.in
# The STS chain as vecs-cli prints an entry (BEGIN on the label's line), with CRLF endings.
{
	printf 'Alias :\tTenantCredential-1\nEntry type :\tTrusted Cert\nCertificate :\t'
	cat "$work/sts.pem" "$work/root.pem"
} | sed 's/$/\r/' >sts-chain-vecs.in
# A PEM body wrapped at 64 columns without armor.
sed '/-----/d' "$work/machine.pem" >machine-body.in
