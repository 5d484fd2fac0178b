package platform

import (
	"iter"
	"strings"
	"sync"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// platformPublic are services the platform itself mounts on every port and that
// anyone may call: health checks (Kubernetes probes) and reflection (grpcurl, buf
// curl). Their protos are not ours, so they carry no trialhub.authz.v1 rule.
var platformPublic = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// Policy is the authorization table of a server: each procedure's rule, read once
// from the method descriptors' `trialhub.authz.v1.rule` option. A procedure that is
// not in the table, or whose method has no rule, is denied.
type Policy struct {
	rules   map[string]*authzv1.Rule
	unruled []string
}

// NewPolicy reads the rule of every spec.
func NewPolicy(specs iter.Seq[connect.Spec]) *Policy {
	p := &Policy{rules: make(map[string]*authzv1.Rule)}
	for spec := range specs {
		if rule := RuleOf(spec); rule != nil {
			p.rules[spec.Procedure] = rule
		} else {
			p.unruled = append(p.unruled, spec.Procedure)
		}
	}
	return p
}

// ruleCache holds each registered method's rule, read from the spec the connect
// server hands the chain on the method's first call. The chain therefore applies
// the right rule to every registered method, however early it is called (an
// in-process seed before Handler) and whenever it was registered. Specs without a
// method descriptor (unknown procedures) are not cached, so a caller cannot grow it.
type ruleCache struct{ m sync.Map }

func (c *ruleCache) rule(spec connect.Spec) *authzv1.Rule {
	if v, ok := c.m.Load(spec.Procedure); ok {
		return v.(*authzv1.Rule)
	}
	rule := RuleOf(spec)
	if _, ok := spec.Schema.(protoreflect.MethodDescriptor); ok {
		c.m.Store(spec.Procedure, rule)
	}
	return rule
}

// Rule returns the procedure's rule, or nil when it has none (deny).
func (p *Policy) Rule(procedure string) *authzv1.Rule {
	if p == nil {
		return nil
	}
	return p.rules[procedure]
}

// Unruled lists the registered procedures that have no rule and are therefore denied.
func (p *Policy) Unruled() []string { return p.unruled }

// RuleOf returns the authorization rule declared on a spec's method descriptor, a
// public rule for the platform's own services, or nil.
func RuleOf(spec connect.Spec) *authzv1.Rule {
	for _, prefix := range platformPublic {
		if strings.HasPrefix(spec.Procedure, prefix) {
			return &authzv1.Rule{Public: true}
		}
	}
	md, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return nil
	}
	return MethodRule(md)
}

// MethodRule returns the `trialhub.authz.v1.rule` option of a method, or nil.
func MethodRule(md protoreflect.MethodDescriptor) *authzv1.Rule {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, authzv1.E_Rule) {
		return nil
	}
	rule, _ := proto.GetExtension(opts, authzv1.E_Rule).(*authzv1.Rule)
	return rule
}

// allows reports whether the rule lets role call the method.
func allows(rule *authzv1.Rule, role authzv1.Role) bool {
	for _, r := range rule.GetRoles() {
		if r == role && r != authzv1.Role_ROLE_UNSPECIFIED {
			return true
		}
	}
	return false
}

func describeRoles(rule *authzv1.Rule) string {
	names := make([]string, 0, len(rule.GetRoles()))
	for _, r := range rule.GetRoles() {
		names = append(names, strings.TrimPrefix(r.String(), "ROLE_"))
	}
	if len(names) == 0 {
		return "nobody"
	}
	return strings.Join(names, ", ")
}
