# shellcheck shell=bash
# Sourced by scripts/stack: `up clickhouse-cluster` starts ZooKeeper (Debian's
# package, standalone, 127.0.0.1:$CH_CLUSTER_ZK_PORT) and four ClickHouse
# servers, cluster `ledger_cluster`: shard 01 = nodes 1 and 2, shard 02 =
# nodes 3 and 4 (TCP 9101-9104, HTTP 8201-8204, replication 9301-9304),
# with the single server's users (scripts/clickhouse/users.xml).

CH_CLUSTER_NODES=(1 2 3 4)
CH_CLUSTER_ZK_PORT=${STACK_ZK_PORT:-12181}
ch_cluster_tcp() { echo $((9100 + $1)); }
ch_cluster_addrs() { local n out=(); for n in "${CH_CLUSTER_NODES[@]}"; do out+=("127.0.0.1:$(ch_cluster_tcp "$n")"); done; (IFS=,; echo "${out[*]}"); }
ch_cluster_client() { # ch_cluster_client NODE ARGS...
	local n=$1; shift
	clickhouse-client --host 127.0.0.1 --port "$(ch_cluster_tcp "$n")" --user default --password "$(secret clickhouse-default)" "$@"
}
ch_cluster_ping() { ch_cluster_client "$1" --query 'SELECT 1'; }
# zk_ok: ZooKeeper serves clients. "ruok" answers imok as soon as the
# process runs, before it has loaded its data and takes sessions (a
# ClickHouse server started then fails its handshake and exits); "stat"
# reports a mode only once it serves.
zk_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$CH_CLUSTER_ZK_PORT" && printf 'stat' >&3 && timeout 2 cat <&3) 2>/dev/null | grep -q '^Mode: '; }

start_zookeeper() {
	if zk_ok; then return; fi
	local d=$STACK/data/zookeeper
	mkdir -p "$d" "$STACK/zookeeper"
	cat >"$STACK/zookeeper/zoo.cfg" <<CFG
dataDir=$d
clientPort=$CH_CLUSTER_ZK_PORT
clientPortAddress=127.0.0.1
tickTime=2000
maxClientCnxns=200
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
	log "zookeeper: starting on 127.0.0.1:$CH_CLUSTER_ZK_PORT (Debian's zookeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null))"
	launch zookeeper java -Xmx256m -XX:+ExitOnOutOfMemoryError -Dzookeeper.log.dir="$STACK/logs" \
		-cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:/etc/zookeeper/conf \
		org.apache.zookeeper.server.ZooKeeperServerMain "$STACK/zookeeper/zoo.cfg"
	wait_for zookeeper 60 zk_ok
}

start_clickhouse-cluster() {
	start_zookeeper
	mkdir -p "$STACK/clickhouse"
	# The users (the single server's, same passwords).
	local u sums=()
	for u in default projector queryapi; do
		sums+=(-e "s#@${u^^}_SHA256@#$(printf '%s' "$(secret "clickhouse-$u")" | sha256sum | cut -c1-64)#")
	done
	(umask 077 && sed "${sums[@]}" "$ROOT/scripts/clickhouse/users.xml" >"$STACK/clickhouse/users.xml")
	local n started=()
	for n in "${CH_CLUSTER_NODES[@]}"; do
		ours_running "clickhouse-cluster-$n" && continue
		if port_open "$(ch_cluster_tcp "$n")"; then die "port $(ch_cluster_tcp "$n") is taken by something this script did not start"; fi
		mkdir -p "$STACK/data/clickhouse-cluster/$n"
		(umask 077 && sed -e "s#@DIR@#$STACK#g" -e "s#@NODE@#$n#g" -e "s#@TCP_PORT@#$(ch_cluster_tcp "$n")#" \
			-e "s#@HTTP_PORT@#$((8200 + n))#" -e "s#@INTERSERVER_PORT@#$((9300 + n))#" \
			-e "s#@SHARD@#0$(((n + 1) / 2))#" -e "s#@REPLICA@#ch$n#" -e "s#@ZK_PORT@#$CH_CLUSTER_ZK_PORT#" \
			-e "s#@TCP_1@#$(ch_cluster_tcp 1)#" -e "s#@TCP_2@#$(ch_cluster_tcp 2)#" -e "s#@TCP_3@#$(ch_cluster_tcp 3)#" -e "s#@TCP_4@#$(ch_cluster_tcp 4)#" \
			-e "s#@DEFAULT_PASSWORD@#$(secret clickhouse-default)#g" \
			"$ROOT/scripts/clickhouse/cluster.xml" >"$STACK/clickhouse/cluster-$n.xml")
		log "clickhouse-cluster: starting node $n (shard 0$(((n + 1) / 2)), 127.0.0.1:$(ch_cluster_tcp "$n"))"
		launch "clickhouse-cluster-$n" clickhouse-server --config-file="$STACK/clickhouse/cluster-$n.xml"
		started+=("$n")
	done
	for n in "${started[@]}"; do wait_for "clickhouse-cluster-$n" 90 ch_cluster_ping "$n"; done
	# The ledger's database on every node (the projector's user may not create it).
	ch_cluster_client 1 --query 'CREATE DATABASE IF NOT EXISTS ledger ON CLUSTER ledger_cluster' >/dev/null ||
		die "clickhouse-cluster: could not create the ledger database on the cluster"
	log "clickhouse-cluster: ready ($(ch_cluster_addrs); $(ch_cluster_client 1 --query 'SELECT version()'))"
}

stop_clickhouse-cluster() {
	local n
	for n in "${CH_CLUSTER_NODES[@]}"; do stop_one "clickhouse-cluster-$n"; done
	stop_one zookeeper
}

env_clickhouse-cluster() {
	ch_cluster_ping 1 >/dev/null 2>&1 || return 0
	echo "export LEDGER_TEST_CLICKHOUSE_CLUSTER=$(ch_cluster_addrs)"
	echo "export LEDGER_TEST_CLICKHOUSE_CLUSTER_NAME=ledger_cluster"
}
