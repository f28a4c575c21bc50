package redissink

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// clusterClient is a cluster client on the local stack's Redis Cluster
// (scripts/stack up redis-cluster), as the binaries build it with
// REDIS_CLUSTER=true, and a key prefix of the test's own.
func clusterClient(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	addrs := testenv.Setting(t, "LEDGER_TEST_REDIS_CLUSTER", "the seed nodes of a Redis Cluster", "run scripts/stack up redis-cluster, then source .stack/env")
	rdb, err := NewClient(config.Redis{Addr: addrs, Cluster: true, Username: os.Getenv("REDIS_USERNAME"), Password: os.Getenv("REDIS_PASSWORD")})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "test:" + testenv.ID(t) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := unlinkMatching(ctx, rdb, prefix+"*", nil); err != nil {
			t.Logf("cleanup: %v", err)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// TestClusterContract: the Redis view passes the projection contract on a
// Redis Cluster of three masters (every script names only keys of one
// aggregate's hash slot).
func TestClusterContract(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projection.View {
		rdb, prefix := clusterClient(t)
		s, err := New(rdb, Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestClusterCleanupReachesEveryMaster: a rebuild's cleanup of the other
// generations finds their keys on every master (SCAN sees one node) and
// unlinks them across slots, and keeps the generation it was told to.
func TestClusterCleanupReachesEveryMaster(t *testing.T) {
	rdb, prefix := clusterClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := projectiontest.Generate(5, "", 60, 600)
	for _, gen := range []int{0, 1, 2} {
		s, err := New(rdb, Options{Prefix: GenerationPrefix(prefix, gen)})
		if err != nil {
			t.Fatal(err)
		}
		projectiontest.ApplyInBatches(t, s, h.Events, 100)
	}
	count := func(gen int) int {
		var mu sync.Mutex // ForEachMaster calls its function concurrently
		n, masters := 0, 0
		err := rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys, err := node.Keys(ctx, GenerationPattern(prefix, gen)).Result()
			mu.Lock()
			defer mu.Unlock()
			if len(keys) > 0 {
				masters++
			}
			for _, k := range keys {
				if g, ok := generationOf(prefix, k); ok && g == gen {
					n++
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if gen == 2 && masters < 2 {
			t.Fatalf("generation 2's keys are on %d master(s): the test needs them spread", masters)
		}
		return n
	}
	before := count(1)
	if before == 0 || count(2) == 0 {
		t.Fatalf("generations 1 and 2 hold %d and %d keys", before, count(2))
	}
	kept := count(2)
	n, err := unlinkOtherGenerations(ctx, rdb, prefix, 2)
	if err != nil {
		t.Fatal(err)
	}
	if left := count(1) + count(0); left != 0 {
		t.Errorf("%d keys of generations 0 and 1 left after the cleanup (it unlinked %d)", left, n)
	}
	if got := count(2); got != kept {
		t.Errorf("generation 2 holds %d keys after the cleanup, had %d", got, kept)
	}
}

// TestClusterContractWaitingForReplicas: with WaitReplicas the writes go to
// each master in a pipeline of its own ending with WAIT, and the view still
// passes the contract.
func TestClusterContractWaitingForReplicas(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projection.View {
		rdb, prefix := clusterClient(t)
		s, err := New(rdb, Options{Prefix: prefix, WaitReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestWaitWithoutReplicasFails: a server without the replicas asked for
// fails the batch (the projector retries it) instead of reporting it done.
func TestWaitWithoutReplicasFails(t *testing.T) {
	rdb, prefix := testenv.RedisClient(t) // the local stack's single server: no replicas
	s, err := New(rdb, Options{Prefix: prefix, WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := projectiontest.Generate(1, "", 2, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Apply(ctx, h.Events)
	if err == nil || !strings.Contains(err.Error(), "on 0 replicas") {
		t.Fatalf("Apply with no replica to wait for: %v, want an error naming the replicas", err)
	}
}
