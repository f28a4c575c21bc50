# Shared by scripts/stack and scripts/interop (sourced; they define log and die).

# apt_install LOG PKG...: installs the packages with apt-get, as root only,
# appending apt's output to LOG; nothing to do without packages.
apt_install() {
	local logf=$1
	shift
	(($#)) || return 0
	[[ $(id -u) == 0 ]] || die "missing packages: $*; install them (sudo apt-get install $*) or run as root"
	log "installing $* with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >"$logf" 2>&1 || { tail -20 "$logf" >&2; die "apt-get update failed (log: $logf)"; }
	apt-get install -y -qq --no-install-recommends "$@" >>"$logf" 2>&1 ||
		{ tail -20 "$logf" >&2; die "apt-get install failed (log: $logf)"; }
}

# CLUSTER_TESTS names the tests that need the local clusters (scripts/stack
# up --cluster): scripts/test-cluster runs them, scripts/test's main suite
# skips them.
CLUSTER_TESTS='^(TestClickHouseCluster|TestKafkaCluster|TestFailover)'
