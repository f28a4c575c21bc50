package kafkax

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// Consumer-group helpers of the rebuild and of tests.

// CommitGroupOffsets commits pos as the offsets of group, which must have
// no members (a live projector of that group would overwrite them).
func CommitGroupOffsets(ctx context.Context, cfg config.Kafka, group string, pos map[string]map[int32]int64) error {
	cl, err := NewClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	var offs kadm.Offsets
	for t, parts := range pos {
		for p, o := range parts {
			offs.Add(kadm.Offset{Topic: t, Partition: p, At: o, LeaderEpoch: -1})
		}
	}
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, group, offs); err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	return nil
}

// GroupMembers returns how many members group has (0 for an unknown group).
func GroupMembers(ctx context.Context, cfg config.Kafka, group string) (int, error) {
	cl, err := NewClient(cfg)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	described, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("describe group %s: %w", group, err)
	}
	g, ok := described[group]
	if !ok || errors.Is(g.Err, kerr.GroupIDNotFound) || g.State == "Dead" {
		return 0, nil
	}
	if g.Err != nil {
		return 0, fmt.Errorf("describe group %s: %w", group, g.Err)
	}
	return len(g.Members), nil
}

// WaitGroupEmpty polls until group has no members, or timeout passes
// (an error).
func WaitGroupEmpty(ctx context.Context, cfg config.Kafka, group string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := GroupMembers(ctx, cfg, group)
		if err == nil && n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d members left", n)
			}
			return fmt.Errorf("group %s did not empty within %s: %w", group, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// DeleteGroup deletes group (its committed offsets); an unknown group is
// not an error.
func DeleteGroup(ctx context.Context, cfg config.Kafka, group string) error {
	cl, err := NewClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("delete group %s: %w", group, err)
	}
	return nil
}
