package topology

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Principals are the Kafka principals of the ledger's roles, e.g.
// "User:gateway". Each gets only the ACLs its role needs (RoleACLs).
type Principals struct {
	// Gateway writes commands and reads command-results (by partition,
	// without a group).
	Gateway string
	// Processor reads commands and its restore topics (snapshots,
	// command-results, events) in its group, and writes events,
	// snapshots, command-results, the DLQ and saga commands, in
	// transactions under its transactional-id prefix.
	Processor string
	// Projector reads events and command-results in the projector groups
	// (live and rebuild generations), and may delete a retired
	// generation's group.
	Projector string
	// Upstream systems write commands, nothing else.
	Upstream string
}

// DefaultPrincipals are the SCRAM users scripts/stack creates.
func DefaultPrincipals() Principals {
	return Principals{Gateway: "User:gateway", Processor: "User:processor", Projector: "User:projector", Upstream: "User:upstream"}
}

// Validate reports a principal that is not "<type>:<name>".
func (p Principals) Validate() error {
	var errs []error
	for role, v := range map[string]string{"gateway": p.Gateway, "processor": p.Processor, "projector": p.Projector, "upstream": p.Upstream} {
		if !validPrincipal(v) {
			errs = append(errs, fmt.Errorf("%s principal %q: want <type>:<name>, e.g. User:%s", role, v, role))
		}
	}
	return errors.Join(errs...)
}

func validPrincipal(s string) bool {
	for i := 1; i < len(s)-1; i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// RoleACLs are the ACLs of every role on the topics under prefix: one
// builder per (principal, resources, operations). Group and
// transactional-id names follow the binaries' defaults
// (<prefix>processor, <prefix>processor-<instance>, <prefix>projector-…).
func RoleACLs(prefix string, p Principals) []*kadm.ACLBuilder {
	n := NamesFor(prefix)
	lit := func(principal string) *kadm.ACLBuilder {
		return kadm.NewACLs().Allow(principal).AllowHosts("*").ResourcePatternType(kadm.ACLPatternLiteral)
	}
	pre := func(principal string) *kadm.ACLBuilder {
		return kadm.NewACLs().Allow(principal).AllowHosts("*").ResourcePatternType(kadm.ACLPatternPrefixed)
	}
	return []*kadm.ACLBuilder{
		lit(p.Gateway).Topics(n.Commands).Operations(kadm.OpWrite, kadm.OpDescribe),
		lit(p.Gateway).Topics(n.Results).Operations(kadm.OpRead, kadm.OpDescribe),

		lit(p.Processor).Topics(n.Commands, n.Snapshots, n.Results, n.Events).Operations(kadm.OpRead, kadm.OpDescribe),
		lit(p.Processor).Topics(n.Commands, n.Events, n.Snapshots, n.Results, n.DLQ).Operations(kadm.OpWrite, kadm.OpDescribe),
		lit(p.Processor).Groups(prefix+"processor").Operations(kadm.OpRead, kadm.OpDescribe),
		pre(p.Processor).TransactionalIDs(prefix+"processor-").Operations(kadm.OpWrite, kadm.OpDescribe),

		lit(p.Projector).Topics(n.Events, n.Results).Operations(kadm.OpRead, kadm.OpDescribe),
		pre(p.Projector).Groups(prefix+"projector-").Operations(kadm.OpRead, kadm.OpDescribe, kadm.OpDelete),

		lit(p.Upstream).Topics(n.Commands).Operations(kadm.OpWrite, kadm.OpDescribe),
	}
}

// ErrNoAuthorizer is returned by ApplyACLs when the cluster has no
// authorizer (SECURITY_DISABLED): there is nothing to apply.
var ErrNoAuthorizer = errors.New("the cluster has no authorizer: ACLs are not enforced")

// ApplyACLs creates the role ACLs (creating one that exists is a no-op).
func ApplyACLs(ctx context.Context, adm *kadm.Client, prefix string, p Principals) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for _, b := range RoleACLs(prefix, p) {
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("create ACLs: %w", err)
		}
		for _, r := range res {
			if errors.Is(r.Err, kerr.SecurityDisabled) {
				return ErrNoAuthorizer
			}
			if r.Err != nil {
				return fmt.Errorf("create ACL for %s on %s %q: %w", r.Principal, r.Type, r.Name, r.Err)
			}
		}
	}
	return nil
}
