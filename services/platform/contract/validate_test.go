package contract_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxSkippedShare is the share of standard rules the generic test may fail to
// derive an invalid value for before it fails: it must not quietly test nothing.
const maxSkippedShare = 0.05

func newValidator(t testing.TB) protovalidate.Validator {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatalf("protovalidate.New: %v", err)
	}
	return v
}

// violation is what a test expects of a violation: its field path
// (protovalidate.FieldPathString) and rule id.
type violation struct{ path, id string }

func (v violation) String() string { return fmt.Sprintf("%s [%s]", v.path, v.id) }

// violations validates msg and returns its violations; nil when msg is valid.
func violations(t testing.TB, v protovalidate.Validator, msg proto.Message) []violation {
	t.Helper()
	err := v.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("validate %s: %v", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	out := make([]violation, len(verr.Violations))
	for i, viol := range verr.Violations {
		out[i] = violation{protovalidate.FieldPathString(viol.Proto.GetField()), viol.Proto.GetRuleId()}
	}
	return out
}

func TestExamplesAreValid(t *testing.T) {
	v := newValidator(t)
	have := make(map[protoreflect.FullName]bool)
	for _, e := range examples {
		have[e.typ] = true
		if got := violations(t, v, e.message(t)); len(got) > 0 {
			t.Errorf("%s: valid example rejected: %v", e.name(), got)
		}
	}
	requests := requestTypes(t)
	for _, md := range requests {
		if !have[md.FullName()] {
			t.Errorf("no valid example of request type %s", md.FullName())
		}
		delete(have, md.FullName())
	}
	for name := range have {
		t.Errorf("example of %s, which is no request type", name)
	}
	t.Logf("%d valid examples of %d request types", len(examples), len(requests))
}

// step leads from a message to one of its message fields (index < 0) or to an
// element of a repeated message field.
type step struct {
	fd    protoreflect.FieldDescriptor
	index int
}

// locate follows steps from root and returns the message reached, mutable.
func locate(root protoreflect.Message, steps []step) protoreflect.Message {
	m := root
	for _, s := range steps {
		if s.index < 0 {
			m = m.Mutable(s.fd).Message()
		} else {
			m = m.Mutable(s.fd).List().Get(s.index).Message()
		}
	}
	return m
}

// node is a contract message inside an example: the root or a nested message.
type node struct {
	msg   protoreflect.Message
	steps []step
	path  string // its field path, "" for the root
}

// nodes returns the root and every contract message set inside it.
func nodes(root protoreflect.Message) []node {
	var out []node
	var visit func(n node)
	visit = func(n node) {
		out = append(out, n)
		fields := n.msg.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Message() == nil || fd.IsMap() || !inContract(fd.Message()) {
				continue
			}
			if fd.IsList() {
				list := n.msg.Get(fd).List()
				for j := range list.Len() {
					visit(node{list.Get(j).Message(), append(slices.Clip(n.steps), step{fd, j}), fmt.Sprintf("%s[%d]", join(n.path, fd.Name()), j)})
				}
			} else if n.msg.Has(fd) {
				visit(node{n.msg.Get(fd).Message(), append(slices.Clip(n.steps), step{fd, -1}), join(n.path, fd.Name())})
			}
		}
	}
	visit(node{msg: root})
	return out
}

func join(path string, name protoreflect.Name) string {
	if path == "" {
		return string(name)
	}
	return path + "." + string(name)
}

// TestStandardRulesReject derives, from the rules themselves, an invalid value for
// every standard rule of every field inside every valid example, sets it on a copy
// of the example, and expects protovalidate to report a violation with that field
// path and rule id.
func TestStandardRulesReject(t *testing.T) {
	v := newValidator(t)
	var (
		cases                        int
		tested                       = make(map[protoreflect.FullName]bool)
		celRules                     = make(map[protoreflect.FullName]int)
		rulesCovered                 = make(map[string]bool)
		skipped, unreachable, failed []string
	)
	for _, e := range examples {
		example := e.message(t)
		if got := violations(t, v, example); len(got) > 0 {
			// A violation already there could pass for the one a case expects.
			t.Errorf("%s: valid example rejected, not used: %v", e.name(), got)
			continue
		}
		for _, n := range nodes(example.ProtoReflect()) {
			fields := n.msg.Descriptor().Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				d, err := fieldMutations(n.msg, fd, join(n.path, fd.Name()))
				if err != nil {
					t.Fatalf("%s: rules of %s: %v", e.name(), fd.FullName(), err)
				}
				if d.cel > 0 {
					celRules[fd.FullName()] = d.cel
				}
				unreachable = append(unreachable, d.unreachable...)
				for _, s := range d.skipped {
					skipped = append(skipped, fmt.Sprintf("%s: %s", fd.FullName(), s))
				}
				for _, mu := range d.mutations {
					cases++
					msg := proto.Clone(example)
					mu.apply(locate(msg.ProtoReflect(), n.steps))
					got := violations(t, v, msg)
					if !slices.Contains(got, mu.want) {
						failed = append(failed, fmt.Sprintf("%s: breaking %s of %s: want violation %v, got %v", e.name(), mu.rule, fd.FullName(), mu.want, got))
						continue
					}
					tested[fd.FullName()] = true
					rulesCovered[string(fd.FullName())+" "+mu.rule] = true
				}
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d invalid values were not rejected as expected:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	slices.Sort(unreachable)
	unreachable = slices.Compact(unreachable)
	if len(unreachable) > 0 {
		t.Errorf("rules that can never fire:\n%s", strings.Join(unreachable, "\n"))
	}

	// Every field with standard rules inside the request types must have been
	// reached through some example, so that a new nested message cannot go untested.
	var ruled, unreached []string
	for _, md := range reachable(requestTypes(t)) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if standardRules(fd) {
				ruled = append(ruled, string(fd.FullName()))
				if !tested[fd.FullName()] {
					unreached = append(unreached, string(fd.FullName()))
				}
			}
		}
	}
	// A rule skipped at one place may be covered at another (a list empty in one
	// element and filled in the next).
	skipped = slices.DeleteFunc(skipped, func(s string) bool {
		return rulesCovered[strings.Replace(strings.SplitN(s, " (", 2)[0], ": ", " ", 1)]
	})
	slices.Sort(skipped)
	skipped = slices.Compact(skipped)
	var cel int
	for _, n := range celRules {
		cel += n
	}
	t.Logf("%d request types, %d examples; %d fields with standard rules, %d of them tested; %d rules covered by %d invalid values; %d rules skipped; %d field-level CEL rules left to TestCELAndOneofRules",
		len(requestTypes(t)), len(examples), len(ruled), len(tested), len(rulesCovered), cases, len(skipped), cel)
	if len(skipped) > 0 {
		t.Logf("skipped:\n%s", strings.Join(skipped, "\n"))
	}
	if len(unreached) > 0 {
		t.Errorf("fields with standard rules that no example reaches (extend the examples):\n%s", strings.Join(unreached, "\n"))
	}
	if share := float64(len(skipped)) / float64(len(rulesCovered)+len(skipped)); share > maxSkippedShare {
		t.Errorf("%.0f%% of the rules were skipped, more than %.0f%%: teach scalarInvalids their kinds", 100*share, 100*maxSkippedShare)
	}
}

// standardRules reports whether fd has rules other than CEL expressions.
func standardRules(fd protoreflect.FieldDescriptor) bool {
	fr, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || fr == nil {
		return false
	}
	typ, _ := typedRules(fr)
	return typ != "" || fr.GetRequired()
}
