package contract_test

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	validatepb "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// mutation breaks one standard rule of one field inside an example.
type mutation struct {
	rule  string // the rule broken, e.g. "repeated.min_items"
	want  violation
	apply func(parent protoreflect.Message) // sets the invalid value on the field's message
}

// derivation is what fieldMutations found for one field.
type derivation struct {
	mutations   []mutation
	skipped     []string // rules no invalid value could be derived for
	unreachable []string // rules no value can break, because `ignore` exempts it
	cel         int      // field-level CEL rules, left to TestCELAndOneofRules
}

// fieldMutations derives one mutation per standard rule of field fd of message m
// (at field path path).
func fieldMutations(m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) (d derivation, err error) {
	fr, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || fr == nil {
		return d, err
	}
	d.cel = len(fr.GetCel()) + len(fr.GetCelExpression())
	if fr.GetIgnore() == validatepb.Ignore_IGNORE_ALWAYS {
		d.skipped = append(d.skipped, "ignore IGNORE_ALWAYS")
		return d, nil
	}
	add := func(rule string, want violation, apply func(protoreflect.Message)) {
		d.mutations = append(d.mutations, mutation{rule, want, apply})
	}
	// scalar adds the invalids of a single value, unless `ignore` exempts them.
	scalar := func(invalids []invalid, ignore validatepb.Ignore, at string, set func(protoreflect.Message, protoreflect.Value)) {
		for _, inv := range invalids {
			if ignore == validatepb.Ignore_IGNORE_IF_ZERO_VALUE && isZero(inv.value) {
				d.unreachable = append(d.unreachable, fmt.Sprintf("%s: %s (only the zero value breaks it, and IGNORE_IF_ZERO_VALUE exempts that)", fd.FullName(), inv.rule))
				continue
			}
			add(inv.rule, violation{at, inv.id}, func(p protoreflect.Message) { set(p, inv.value) })
		}
	}
	if fr.GetRequired() {
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			add("required", violation{path, "required"}, func(p protoreflect.Message) { p.Clear(fd) })
		} else {
			d.skipped = append(d.skipped, "required")
		}
	}
	typ, rm := typedRules(fr)
	switch typ {
	case "":
	case "repeated":
		n := m.Get(fd).List().Len()
		rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			rule := "repeated." + string(rf.Name())
			switch rf.Name() {
			case "min_items":
				k := int(rv.Uint())
				if k == 0 || n < k-1 {
					d.skipped = append(d.skipped, rule)
					break
				}
				add(rule, violation{path, rule}, func(p protoreflect.Message) { p.Mutable(fd).List().Truncate(k - 1) })
			case "max_items":
				if n == 0 {
					d.skipped = append(d.skipped, rule+" (empty list in the example)")
					break
				}
				limit := int(rv.Uint())
				add(rule, violation{path, rule}, func(p protoreflect.Message) {
					l := p.Mutable(fd).List()
					for i := 0; l.Len() <= limit; i++ {
						l.Append(cloneValue(l.Get(i % n)))
					}
				})
			case "unique":
				if n == 0 {
					d.skipped = append(d.skipped, rule+" (empty list in the example)")
					break
				}
				add(rule, violation{path, rule}, func(p protoreflect.Message) {
					l := p.Mutable(fd).List()
					l.Append(cloneValue(l.Get(0)))
				})
			case "items":
				items := rv.Message().Interface().(*validatepb.FieldRules)
				d.cel += len(items.GetCel())
				ityp, irm := typedRules(items)
				if ityp == "" {
					break
				}
				invs, skipped := scalarInvalids(fd, ityp, irm)
				d.skipped = append(d.skipped, skipped...)
				scalar(invs, items.GetIgnore(), path+"[0]", func(p protoreflect.Message, v protoreflect.Value) {
					if l := p.Mutable(fd).List(); l.Len() == 0 {
						l.Append(v)
					} else {
						l.Set(0, v)
					}
				})
			default:
				d.skipped = append(d.skipped, rule)
			}
			return true
		})
	case "map":
		if fd.MapKey().Kind() != protoreflect.StringKind {
			d.skipped = append(d.skipped, "map rules on a non-string key")
			break
		}
		entries := m.Get(fd).Map()
		key, val := "k", fd.MapValue().Default()
		var keys []string
		entries.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k.String())
			return true
		})
		if len(keys) > 0 {
			slices.Sort(keys)
			key, val = keys[0], entries.Get(protoreflect.ValueOfString(keys[0]).MapKey())
		}
		keyPath := func(k string) string { return path + "[" + strconv.Quote(k) + "]" }
		rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			rule := "map." + string(rf.Name())
			switch rf.Name() {
			case "max_pairs":
				limit := int(rv.Uint())
				add(rule, violation{path, rule}, func(p protoreflect.Message) {
					mp := p.Mutable(fd).Map()
					for i := 0; mp.Len() <= limit; i++ {
						mp.Set(protoreflect.ValueOfString(fmt.Sprintf("k%d", i)).MapKey(), val)
					}
				})
			case "min_pairs":
				if rv.Uint() != 1 {
					d.skipped = append(d.skipped, rule)
					break
				}
				add(rule, violation{path, rule}, func(p protoreflect.Message) { p.Clear(fd) })
			case "keys", "values":
				sub := rv.Message().Interface().(*validatepb.FieldRules)
				d.cel += len(sub.GetCel())
				styp, srm := typedRules(sub)
				if styp == "" {
					break
				}
				target := fd.MapKey()
				if rf.Name() == "values" {
					target = fd.MapValue()
				}
				invs, skipped := scalarInvalids(target, styp, srm)
				d.skipped = append(d.skipped, skipped...)
				for _, inv := range invs {
					if rf.Name() == "keys" {
						scalar([]invalid{inv}, sub.GetIgnore(), keyPath(inv.value.String()), func(p protoreflect.Message, v protoreflect.Value) {
							p.Mutable(fd).Map().Set(v.MapKey(), val)
						})
					} else {
						scalar([]invalid{inv}, sub.GetIgnore(), keyPath(key), func(p protoreflect.Message, v protoreflect.Value) {
							p.Mutable(fd).Map().Set(protoreflect.ValueOfString(key).MapKey(), v)
						})
					}
				}
			default:
				d.skipped = append(d.skipped, rule)
			}
			return true
		})
	default:
		invs, skipped := scalarInvalids(fd, typ, rm)
		d.skipped = append(d.skipped, skipped...)
		scalar(invs, fr.GetIgnore(), path, func(p protoreflect.Message, v protoreflect.Value) { p.Set(fd, v) })
	}
	return d, nil
}

// isZero reports whether v is the zero value of a scalar field, which
// IGNORE_IF_ZERO_VALUE exempts from the rules.
func isZero(v protoreflect.Value) bool {
	if _, ok := v.Interface().(protoreflect.Message); ok {
		return false
	}
	return reflect.ValueOf(v.Interface()).IsZero()
}

func cloneValue(v protoreflect.Value) protoreflect.Value {
	if m, ok := v.Interface().(protoreflect.Message); ok {
		return protoreflect.ValueOfMessage(proto.Clone(m.Interface()).ProtoReflect())
	}
	return v
}

// invalid is a value that breaks one standard rule.
type invalid struct {
	rule  string // the rule broken, as buf.validate names it, e.g. "int32.gte"
	id    string // the rule id protovalidate reports, e.g. "int32.gte_lte"
	value protoreflect.Value
}

// notRules are fields of the rule messages that are not rules: documentation and
// modifiers of other rules.
var notRules = map[protoreflect.Name]bool{"example": true, "strict": true}

// typedRules returns the type-specific part of field rules ("string", "int32",
// "repeated", ...) and its message, or "" when there is none.
func typedRules(fr *validatepb.FieldRules) (string, protoreflect.Message) {
	m := fr.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("type"))
	if f == nil {
		return "", nil
	}
	return string(f.Name()), m.Get(f).Message()
}

// scalarInvalids derives one invalid value per rule of the type-specific rules rm
// (of type typ) for a single value of fd: the field, a list element or a map key
// or value. The rules it cannot derive a value for are returned in skipped.
func scalarInvalids(fd protoreflect.FieldDescriptor, typ string, rm protoreflect.Message) (out []invalid, skipped []string) {
	skip := func(rf protoreflect.FieldDescriptor) { skipped = append(skipped, typ+"."+string(rf.Name())) }
	switch typ {
	case "string":
		rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			if notRules[rf.Name()] {
				return true
			}
			rule := typ + "." + string(rf.Name())
			add := func(s string) { out = append(out, invalid{rule, rule, protoreflect.ValueOfString(s)}) }
			switch rf.Name() {
			case "min_len", "min_bytes":
				if n := rv.Uint(); n > 0 {
					add(strings.Repeat("a", int(n-1)))
				} else {
					skip(rf)
				}
			case "max_len", "max_bytes", "len":
				add(strings.Repeat("a", int(rv.Uint()+1)))
			case "pattern":
				add(nonMatching(rv.String()))
			case "prefix":
				add("~" + rv.String())
			case "suffix":
				add(rv.String() + "~")
			case "not_contains":
				add(rv.String())
			case "uuid", "tuuid":
				if rv.Bool() {
					add("not-a-uuid")
				}
			case "uri":
				if rv.Bool() {
					add("not a uri")
				}
			case "email":
				if rv.Bool() {
					add("not an email")
				}
			default:
				skip(rf)
			}
			return true
		})
	case "int32", "int64", "sint32", "sint64", "sfixed32", "sfixed64", "double", "float":
		out, skipped = numericInvalids(fd.Kind(), typ, rm)
	case "enum":
		rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			if notRules[rf.Name()] {
				return true
			}
			rule := typ + "." + string(rf.Name())
			add := func(n protoreflect.EnumNumber) { out = append(out, invalid{rule, rule, protoreflect.ValueOfEnum(n)}) }
			values := fd.Enum().Values()
			switch rf.Name() {
			case "defined_only":
				if rv.Bool() {
					n := protoreflect.EnumNumber(9999)
					for values.ByNumber(n) != nil {
						n++
					}
					add(n)
				}
			case "not_in":
				add(protoreflect.EnumNumber(rv.List().Get(0).Int()))
			case "in":
				allowed := listInts(rv.List())
				for i := range values.Len() {
					if n := values.Get(i).Number(); !slices.Contains(allowed, int64(n)) {
						add(n)
						return true
					}
				}
				skip(rf)
			default:
				skip(rf)
			}
			return true
		})
	case "timestamp":
		out, skipped = timestampInvalids(rm)
	case "field_mask":
		rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			if notRules[rf.Name()] {
				return true
			}
			rule := typ + "." + string(rf.Name())
			add := func(paths ...string) {
				fm := &fieldmaskpb.FieldMask{Paths: paths}
				out = append(out, invalid{rule, rule, protoreflect.ValueOfMessage(fm.ProtoReflect())})
			}
			switch rf.Name() {
			case "in":
				add("no_such_field")
			case "not_in":
				add(rv.List().Get(0).String())
			default:
				skip(rf)
			}
			return true
		})
	default:
		rm.Range(func(rf protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if !notRules[rf.Name()] {
				skip(rf)
			}
			return true
		})
	}
	return out, skipped
}

// numericInvalids derives values just outside the bounds of numeric rules, and
// NaN for `finite`. A lower and an upper bound together form one rule, reported
// under a combined id such as "int32.gte_lte".
func numericInvalids(kind protoreflect.Kind, typ string, rm protoreflect.Message) (out []invalid, skipped []string) {
	var lo, hi float64
	var loName, hiName string
	rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
		switch name := string(rf.Name()); {
		case notRules[rf.Name()]:
		case name == "gt" || name == "gte":
			lo, loName = toFloat(rv), name
		case name == "lt" || name == "lte":
			hi, hiName = toFloat(rv), name
		case name == "finite" && rv.Bool():
			out = append(out, invalid{typ + ".finite", typ + ".finite", numericValue(kind, math.NaN())})
		default:
			skipped = append(skipped, typ+"."+name)
		}
		return true
	})
	id := boundsID(typ, loName, hiName)
	if loName != "" && hiName != "" && hi < lo {
		// An exclusive range (outside [hi, lo]) needs a value between the bounds.
		return out, append(skipped, id)
	}
	if loName != "" {
		v := lo
		if loName == "gte" {
			v = lo - 1
		}
		out = append(out, invalid{typ + "." + loName, id, numericValue(kind, v)})
	}
	if hiName != "" {
		v := hi
		if hiName == "lte" {
			v = hi + 1
		}
		out = append(out, invalid{typ + "." + hiName, id, numericValue(kind, v)})
	}
	return out, skipped
}

// timestampInvalids derives timestamps that break timestamp rules.
func timestampInvalids(rm protoreflect.Message) (out []invalid, skipped []string) {
	now := time.Now()
	value := func(t time.Time) protoreflect.Value {
		return protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect())
	}
	asTime := func(v protoreflect.Value) time.Time { return v.Message().Interface().(*timestamppb.Timestamp).AsTime() }
	var lo, hi time.Time
	var loName, hiName string
	rm.Range(func(rf protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
		rule := "timestamp." + string(rf.Name())
		switch rf.Name() {
		case "example":
		case "gt", "gte":
			lo, loName = asTime(rv), string(rf.Name())
		case "lt", "lte":
			hi, hiName = asTime(rv), string(rf.Name())
		case "lt_now":
			out = append(out, invalid{rule, rule, value(now.Add(time.Hour))})
		case "gt_now":
			out = append(out, invalid{rule, rule, value(now.Add(-time.Hour))})
		case "within":
			d := rv.Message().Interface().(*durationpb.Duration).AsDuration()
			out = append(out, invalid{rule, rule, value(now.Add(d + 24*time.Hour))})
		default:
			skipped = append(skipped, rule)
		}
		return true
	})
	id := boundsID("timestamp", loName, hiName)
	if loName != "" && hiName != "" && hi.Before(lo) {
		return out, append(skipped, id)
	}
	if loName != "" {
		v := lo
		if loName == "gte" {
			v = lo.Add(-time.Second)
		}
		out = append(out, invalid{"timestamp." + loName, id, value(v)})
	}
	if hiName != "" {
		v := hi
		if hiName == "lte" {
			v = hi.Add(time.Second)
		}
		out = append(out, invalid{"timestamp." + hiName, id, value(v)})
	}
	return out, skipped
}

// boundsID is the rule id protovalidate reports for a range: "int32.gte" alone,
// "int32.gte_lte" with both bounds.
func boundsID(typ, loName, hiName string) string {
	switch {
	case loName != "" && hiName != "":
		return typ + "." + loName + "_" + hiName
	case loName != "":
		return typ + "." + loName
	default:
		return typ + "." + hiName
	}
}

func toFloat(v protoreflect.Value) float64 {
	switch x := v.Interface().(type) {
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a signed number: %T", v.Interface()))
}

func numericValue(kind protoreflect.Kind, x float64) protoreflect.Value {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(x))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(x))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(x))
	default:
		return protoreflect.ValueOfFloat64(x)
	}
}

func listInts(l protoreflect.List) []int64 {
	out := make([]int64, l.Len())
	for i := range l.Len() {
		out[i] = l.Get(i).Int()
	}
	return out
}

// nonMatching returns a short string that pattern does not match, preferring a
// non-empty one (an empty value may be exempt through `ignore`).
func nonMatching(pattern string) string {
	re := regexp.MustCompile(pattern)
	for _, s := range []string{"!", " ", "\n", "a b", "A", "a", "0", "~~~~~~~~", ""} {
		if !re.MatchString(s) {
			return s
		}
	}
	panic("no value breaks pattern " + pattern)
}
