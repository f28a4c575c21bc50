# shellcheck shell=bash
# Sourced by scripts/stack: `up kafka-cluster` starts three Apache Kafka nodes
# (KRaft, each a broker and a controller, node ids 1-3) from the single
# broker's jars, configured by scripts/kafka/cluster.properties: clients on
# SASL_SSL 127.0.0.1:19092-19094 (SCRAM-SHA-512 with the single broker's users,
# CA and certificate), controllers on 19192-19194 (mutual TLS), three replicas
# and min.insync.replicas=2 by default. Node N: pid file kafka-cluster-N, data
# in .stack/data/kafka-cluster/N, logs .stack/logs/kafka-cluster-N.{log,out}.
# `up` starts the nodes that do not run (all three at once: the quorum needs
# two of them; after `scripts/stack kill kafka-cluster-N` only that one) and
# waits until the cluster has its three brokers.

KAFKA_CLUSTER_NODES=(1 2 3)
KAFKA_CLUSTER_PORT=${STACK_KAFKA_CLUSTER_PORT:-19092}                       # node N: + N-1
KAFKA_CLUSTER_CONTROLLER_PORT=${STACK_KAFKA_CLUSTER_CONTROLLER_PORT:-19192} # node N: + N-1
# Three brokers, four ClickHouse servers and the tests share 2 cores and 24 GiB.
KAFKA_CLUSTER_HEAP=${STACK_KAFKA_CLUSTER_HEAP:-384m}

kafka_cluster_port() { echo $((KAFKA_CLUSTER_PORT + $1 - 1)); }
kafka_cluster_controller_port() { echo $((KAFKA_CLUSTER_CONTROLLER_PORT + $1 - 1)); }
kafka_cluster_addrs() { local n out=(); for n in "${KAFKA_CLUSTER_NODES[@]}"; do out+=("127.0.0.1:$(kafka_cluster_port "$n")"); done; (IFS=,; echo "${out[*]}"); }
kafka_cluster_voters() { local n out=(); for n in "${KAFKA_CLUSTER_NODES[@]}"; do out+=("$n@127.0.0.1:$(kafka_cluster_controller_port "$n")"); done; (IFS=,; echo "${out[*]}"); }

# kafka_cluster_started NODE MARKER STAMP: kafka_started_since for node
# NODE's own log (kafka-cluster-NODE.log and the files it rolled into).
kafka_cluster_started() {
	local files; mapfile -t files < <(find "$STACK/logs" -maxdepth 1 -name "kafka-cluster-$1.log*" -newer "$2")
	((${#files[@]})) || return 1
	grep -h 'Kafka Server started' "${files[@]}" | awk -v t="[$3" '$0 >= t { found = 1 } END { exit !found }'
}

# kafka_cluster_brokers: how many brokers the cluster reports (registered
# and unfenced: DescribeCluster), asked as the admin user. The jars have no
# kafka-tools (BrokerApiVersionsCommand, MetadataQuorumCommand), but the
# server's ConfigCommand lists every broker it describes.
kafka_cluster_brokers() {
	timeout 60 java -Xmx128m -XX:TieredStopAtLevel=1 -cp "$STACK/kafka/libs/*" kafka.admin.ConfigCommand \
		--bootstrap-server "$(kafka_cluster_addrs)" --command-config "$STACK/kafka-cluster/admin.properties" \
		--describe --entity-type brokers 2>/dev/null | grep -o 'configs for broker [0-9]*' | sort -u | wc -l
}
kafka_cluster_complete() { [[ $(kafka_cluster_brokers) -eq ${#KAFKA_CLUSTER_NODES[@]} ]]; }

start_kafka-cluster() {
	kafka_fetch
	kafka_tls
	local dir=$STACK/kafka-cluster data=$STACK/data/kafka-cluster cp="$STACK/kafka/libs/*" n name todo=()
	mkdir -p "$dir" "$data"
	# One cluster id for the three nodes, made once.
	if [[ ! -s $data/cluster.id ]]; then
		compgen -G "$data/*/meta.properties" >/dev/null &&
			die "kafka-cluster: $data has formatted nodes but no cluster.id; stop the cluster and delete $data"
		java -cp "$cp" kafka.tools.StorageTool random-uuid >"$data/cluster.id.tmp" && mv "$data/cluster.id.tmp" "$data/cluster.id" ||
			die "kafka-cluster: could not make a cluster id"
	fi
	# The admin's client settings, for the tools run here.
	(umask 077 && printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 \
		"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret kafka-admin)\";" \
		ssl.truststore.type=PEM "ssl.truststore.location=$STACK/tls/ca.pem" >"$dir/admin.properties")
	for n in "${KAFKA_CLUSTER_NODES[@]}"; do
		name=kafka-cluster-$n
		ours_running "kafka-cluster-$n" && continue
		if port_open "$(kafka_cluster_port "$n")" || port_open "$(kafka_cluster_controller_port "$n")"; then
			die "kafka-cluster: port $(kafka_cluster_port "$n") or $(kafka_cluster_controller_port "$n") is taken by something this script did not start"
		fi
		mkdir -p "$dir/$n" "$data/$n"
		(umask 077 && sed -e "s#@NODE_ID@#$n#" -e "s#@VOTERS@#$(kafka_cluster_voters)#" -e "s#@DATA@#$data/$n#" \
			-e "s#@PORT@#$(kafka_cluster_port "$n")#g" -e "s#@CONTROLLER_PORT@#$(kafka_cluster_controller_port "$n")#g" \
			-e "s#@TLS@#$STACK/tls#g" -e "s#@ADMIN_PASSWORD@#$(secret kafka-admin)#" -e "s#@STORE_PASSWORD@#$(secret kafka-keystore)#" \
			"$ROOT/scripts/kafka/cluster.properties" >"$dir/$n/server.properties")
		# The single broker's log configuration, writing kafka-cluster-N.log instead of kafka.log.
		sed "s#/kafka\.log#/$name.log#" "$ROOT/scripts/kafka/log4j2.properties" >"$dir/$n/log4j2.properties"
		todo+=("$n")
	done
	if ((${#todo[@]})); then
		# Format the new nodes (all at once: a JVM each) with the cluster id and the SCRAM users.
		local u scram=() pids=()
		for u in "${KAFKA_USERS[@]}"; do scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(secret "kafka-$u")]"); done
		for n in "${todo[@]}"; do
			[[ -f $data/$n/meta.properties ]] && continue
			java -cp "$cp" kafka.tools.StorageTool format -t "$(cat "$data/cluster.id")" -c "$dir/$n/server.properties" \
				"${scram[@]}" >>"$STACK/logs/kafka-cluster-$n.out" 2>&1 &
			pids+=("$n:$!")
		done
		for u in "${pids[@]}"; do wait "${u#*:}" || fail_start "kafka-cluster-${u%%:*}" "storage format failed"; done
		local stamp; stamp=$(date '+%Y-%m-%d %H:%M:%S')
		for n in "${todo[@]}"; do
			name=kafka-cluster-$n
			touch "$STACK/run/$name.launch"
			log "kafka-cluster: starting node $n on 127.0.0.1:$(kafka_cluster_port "$n") (controller $(kafka_cluster_controller_port "$n"), heap $KAFKA_CLUSTER_HEAP)"
			launch "$name" java "-Xms$KAFKA_CLUSTER_HEAP" "-Xmx$KAFKA_CLUSTER_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
				-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
				"-Dlog4j2.configurationFile=$dir/$n/log4j2.properties" "-Dkafka.logs.dir=$STACK/logs" \
				-cp "$cp" kafka.Kafka "$dir/$n/server.properties"
		done
		for n in "${todo[@]}"; do
			wait_for "kafka-cluster-$n" 120 kafka_cluster_started "$n" "$STACK/run/kafka-cluster-$n.launch" "$stamp"
			wait_for "kafka-cluster-$n" 30 port_open "$(kafka_cluster_port "$n")"
		done
	else
		log "kafka-cluster: nodes ${KAFKA_CLUSTER_NODES[*]} already running"
	fi
	wait_for kafka-cluster 90 kafka_cluster_complete
	log "kafka-cluster: ready, ${#KAFKA_CLUSTER_NODES[@]} brokers ($(kafka_cluster_addrs))"
}

# stop_kafka-cluster: the nodes stop together; one at a time, the last would
# wait for a quorum that left with the others.
stop_kafka-cluster() {
	local n pids=()
	for n in "${KAFKA_CLUSTER_NODES[@]}"; do stop_one "kafka-cluster-$n" & pids+=($!); done
	wait "${pids[@]}"
}

env_kafka-cluster() {
	local n
	for n in "${KAFKA_CLUSTER_NODES[@]}"; do
		if port_open "$(kafka_cluster_port "$n")"; then echo "export LEDGER_TEST_KAFKA_CLUSTER=$(kafka_cluster_addrs)"; return 0; fi
	done
}
