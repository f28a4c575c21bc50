#!/bin/sh
# Makes, once, everything secret the compose stack needs, into the volume at
# ${SECRETS:-/secrets}, one folder per consumer; compose mounts each folder
# into its consumer's container only (volume subpaths), and gen/ into none:
#   kafka/       server.properties (with the admin's password for the broker's
#                own connections), broker.p12, ca.pem, the SCRAM users to create
#                at format time, admin.properties (health check)
#   redis/       users.acl, admin (health check)
#   clickhouse/  users.xml, default (health check)
#   app/         the binaries' passwords, the saga key, ca.pem: owned by the
#                distroless image's nonroot user (65532), mode 0600
#   grafana/     the ClickHouse password of queryapi (Grafana's ClickHouse
#                datasource) and Grafana's admin password; made on its own
#                when a volume of an earlier version lacks it
# Runs in the apache/kafka image (keytool, a POSIX shell, coreutils/busybox).
set -eu
S=${SECRETS:-/secrets}
TEMPLATES=${TEMPLATES:-/templates}
rnd() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
# Grafana (image user 472) reads its folder inside its container only.
grafana() {
	mkdir -p "$S/grafana"
	[ -s "$S/gen/grafana-admin" ] || rnd >"$S/gen/grafana-admin"
	cp "$S/gen/clickhouse-queryapi" "$S/gen/grafana-admin" "$S/grafana/"
	chmod 755 "$S/grafana"
	chmod 644 "$S"/grafana/*
}
if [ -f "$S/.done" ]; then
	if [ ! -d "$S/grafana" ]; then
		umask 077
		grafana
		echo "init-secrets: made grafana/"
	fi
	echo "init-secrets: already made"
	exit 0
fi
mkdir -p "$S/gen" "$S/kafka" "$S/redis" "$S/clickhouse" "$S/app"
umask 077
cd "$S/gen"
for n in kafka-admin kafka-gateway kafka-processor kafka-projector kafka-upstream kafka-keystore \
	redis-admin redis-projector redis-queryapi clickhouse-default clickhouse-projector clickhouse-queryapi saga-key \
	grafana-admin; do
	[ -s "$n" ] || rnd >"$n"
done
P=$(cat kafka-keystore)
rm -f ca.p12 broker.p12
keytool -genkeypair -alias ca -dname "CN=ledger compose CA" -keyalg RSA -keysize 2048 -validity 3650 \
	-ext bc:c -keystore ca.p12 -storetype PKCS12 -storepass "$P" >/dev/null 2>&1
keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$P" >ca.pem
keytool -genkeypair -alias broker -dname "CN=ledger-broker" -keyalg RSA -keysize 2048 -validity 3650 \
	-keystore broker.p12 -storetype PKCS12 -storepass "$P" >/dev/null 2>&1
keytool -certreq -alias broker -keystore broker.p12 -storepass "$P" >broker.csr
keytool -gencert -alias ca -keystore ca.p12 -storepass "$P" -infile broker.csr -rfc -validity 3650 \
	-ext "SAN=dns:kafka,dns:localhost,ip:127.0.0.1" -ext "EKU=serverAuth,clientAuth" >broker.pem
keytool -importcert -noprompt -alias ca -file ca.pem -keystore broker.p12 -storepass "$P" >/dev/null 2>&1
keytool -importcert -noprompt -alias broker -file broker.pem -keystore broker.p12 -storepass "$P" >/dev/null 2>&1

# Kafka.
sed -e "s#@ADMIN_PASSWORD@#$(cat kafka-admin)#" -e "s#@STORE_PASSWORD@#$P#" \
	"$TEMPLATES/server.properties" >"$S/kafka/server.properties"
cp broker.p12 ca.pem "$S/kafka/"
: >"$S/kafka/scram-args"
for u in admin gateway processor projector upstream; do
	printf -- '--add-scram SCRAM-SHA-512=[name=%s,password=%s] ' "$u" "$(cat "kafka-$u")" >>"$S/kafka/scram-args"
done
cat >"$S/kafka/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat kafka-admin)";
ssl.truststore.type=PEM
ssl.truststore.location=$S/kafka/ca.pem
PROPS

# Redis.
sed -e "s#@ADMIN_PASSWORD@#$(cat redis-admin)#" -e "s#@PROJECTOR_PASSWORD@#$(cat redis-projector)#" \
	-e "s#@QUERYAPI_PASSWORD@#$(cat redis-queryapi)#" "$TEMPLATES/users.acl" >"$S/redis/users.acl"
cp redis-admin "$S/redis/admin"

# ClickHouse. The read-only profile may set max_execution_time up to its
# own 10 s (Grafana's plugin sets it on every query; see
# deploy/compose/clickhouse-config.xml).
sum() { printf '%s' "$(cat "$1")" | sha256sum | cut -c1-64; }
sed -e "s#@DEFAULT_SHA256@#$(sum clickhouse-default)#" -e "s#@PROJECTOR_SHA256@#$(sum clickhouse-projector)#" \
	-e "s#@QUERYAPI_SHA256@#$(sum clickhouse-queryapi)#" \
	-e 's#<ip>::1</ip>#<ip>::/0</ip>#' -e '/<ip>127.0.0.1<\/ip>/d' \
	-e 's#<max_execution_time>10</max_execution_time>#&<constraints><max_execution_time><max>10</max><changeable_in_readonly/></max_execution_time></constraints>#' \
	"$TEMPLATES/users.xml" >"$S/clickhouse/users.xml"
cp clickhouse-default "$S/clickhouse/default"

# The binaries.
cp kafka-admin kafka-gateway kafka-processor kafka-projector redis-projector redis-queryapi \
	clickhouse-projector clickhouse-queryapi saga-key "$S/app/"
cp ca.pem "$S/app/ca.pem"
chmod 644 "$S/app/ca.pem"
grafana

# The services' images run as users of their own: their folders are
# readable inside their containers (where nothing else runs).
chmod 755 "$S/kafka" "$S/redis" "$S/clickhouse" "$S/app"
chmod 644 "$S"/kafka/* "$S"/redis/* "$S"/clickhouse/*
if [ "$(id -u)" = 0 ]; then chown -R 65532:65532 "$S/app"; fi
touch "$S/.done"
echo "init-secrets: made"
