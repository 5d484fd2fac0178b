package contract_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform"
)

// wideIntegersAllowed are the 64-bit integer fields the contract has on purpose.
// Every other integer is 32-bit: int64 is a string in JSON and a bigint in
// TypeScript, which clients should meet only where the range is needed.
var wideIntegersAllowed = map[protoreflect.FullName]string{
	"trialhub.patient.v1.AuditEvent.sequence":                            "the audit trail outlives int32 within years (see its comment)",
	"trialhub.patient.v1.VerifyAuditTrailRequest.from_sequence":          "an audit sequence number",
	"trialhub.patient.v1.VerifyAuditTrailRequest.to_sequence":            "an audit sequence number",
	"trialhub.patient.v1.VerifyAuditTrailResponse.events_checked":        "counts audit events, up to the whole trail",
	"trialhub.patient.v1.VerifyAuditTrailResponse.first_sequence":        "an audit sequence number",
	"trialhub.patient.v1.VerifyAuditTrailResponse.last_sequence":         "an audit sequence number",
	"trialhub.patient.v1.VerifyAuditTrailResponse.first_broken_sequence": "an audit sequence number",
	"trialhub.patient.v1.AuditExportSummary.events_exported":             "counts audit events, up to the whole trail",
	"trialhub.patient.v1.AuditExportSummary.first_sequence":              "an audit sequence number",
	"trialhub.patient.v1.AuditExportSummary.last_sequence":               "an audit sequence number",
	"trialhub.trial.v1.AuditEvent.sequence":                              "an audit sequence number, as in the patient service's trail",
	"trialhub.trial.v1.VerifyAuditTrailRequest.from_sequence":            "an audit sequence number",
	"trialhub.trial.v1.VerifyAuditTrailRequest.to_sequence":              "an audit sequence number",
	"trialhub.trial.v1.VerifyAuditTrailResponse.events_checked":          "counts audit events, up to the whole trail",
	"trialhub.trial.v1.VerifyAuditTrailResponse.first_sequence":          "an audit sequence number",
	"trialhub.trial.v1.VerifyAuditTrailResponse.last_sequence":           "an audit sequence number",
	"trialhub.trial.v1.VerifyAuditTrailResponse.first_broken_sequence":   "an audit sequence number",
	"trialhub.epro.v1.AuditEvent.sequence":                               "an audit sequence number, as in the patient service's trail",
	"trialhub.epro.v1.VerifyAuditTrailRequest.from_sequence":             "an audit sequence number",
	"trialhub.epro.v1.VerifyAuditTrailRequest.to_sequence":               "an audit sequence number",
	"trialhub.epro.v1.VerifyAuditTrailResponse.events_checked":           "counts audit events, up to the whole trail",
	"trialhub.epro.v1.VerifyAuditTrailResponse.first_sequence":           "an audit sequence number",
	"trialhub.epro.v1.VerifyAuditTrailResponse.last_sequence":            "an audit sequence number",
	"trialhub.epro.v1.VerifyAuditTrailResponse.first_broken_sequence":    "an audit sequence number",
}

// sideEffectingReads are the Get/List/Verify methods that are deliberately not
// NO_SIDE_EFFECTS, with the reason. Each must be IDEMPOTENT (retrying is safe,
// HTTP GET is not offered).
var sideEffectingReads = map[protoreflect.FullName]string{
	"trialhub.patient.v1.PatientService.GetPatientIdentity": "every call writes a PII_READ audit event, and GET would put " +
		"the subject and the reason into URLs, access logs and browser history",
}

// methodProblems lists what is wrong with a method's declarations: no
// authorization rule, a rule that admits nobody or names ROLE_UNSPECIFIED, or a
// unary Get/List/Verify method that is not NO_SIDE_EFFECTS (which Connect needs to
// serve it over HTTP GET, and which tells clients that retrying it is safe). A
// method in exceptions must instead be IDEMPOTENT.
func methodProblems(md protoreflect.MethodDescriptor, exceptions map[protoreflect.FullName]string) []string {
	var problems []string
	name := md.FullName()
	rule := platform.MethodRule(md)
	switch {
	case rule == nil:
		problems = append(problems, fmt.Sprintf("%s: no trialhub.authz.v1.rule option (the method is denied to everyone)", name))
	case !rule.GetPublic() && len(rule.GetRoles()) == 0:
		problems = append(problems, fmt.Sprintf("%s: rule is neither public nor lists any role", name))
	}
	if slices.Contains(rule.GetRoles(), authzv1.Role_ROLE_UNSPECIFIED) {
		problems = append(problems, fmt.Sprintf("%s: rule lists ROLE_UNSPECIFIED", name))
	}
	unary := !md.IsStreamingClient() && !md.IsStreamingServer()
	readOnlyName := strings.HasPrefix(string(md.Name()), "Get") ||
		strings.HasPrefix(string(md.Name()), "List") ||
		strings.HasPrefix(string(md.Name()), "Verify")
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	_, excepted := exceptions[name]
	switch {
	case excepted && opts.GetIdempotencyLevel() != descriptorpb.MethodOptions_IDEMPOTENT:
		problems = append(problems, fmt.Sprintf("%s: idempotency_level is %v, want IDEMPOTENT (listed as a side-effecting read)", name, opts.GetIdempotencyLevel()))
	case excepted:
	case unary && readOnlyName && opts.GetIdempotencyLevel() != descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		problems = append(problems, fmt.Sprintf("%s: idempotency_level is %v, want NO_SIDE_EFFECTS", name, opts.GetIdempotencyLevel()))
	}
	return problems
}

// hasFieldRule reports whether a field declares a buf.validate rule. `ignore` alone
// is not a rule: it only says when the rules apply.
func hasFieldRule(fd protoreflect.FieldDescriptor) (bool, error) {
	rules, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || rules == nil {
		return false, err
	}
	return rules.HasType() || rules.GetRequired() || len(rules.GetCel()) > 0 || len(rules.GetCelExpression()) > 0, nil
}

// hasAnyRule reports whether a message declares a rule of its own: a message
// rule, a oneof rule or a field rule.
func hasAnyRule(md protoreflect.MessageDescriptor) bool {
	if mr, err := protovalidate.ResolveMessageRules(md); err == nil && mr != nil &&
		(len(mr.GetCel()) > 0 || len(mr.GetOneof()) > 0 || len(mr.GetCelExpression()) > 0) {
		return true
	}
	for i := range md.Oneofs().Len() {
		if or, err := protovalidate.ResolveOneofRules(md.Oneofs().Get(i)); err == nil && or.GetRequired() {
			return true
		}
	}
	for i := range md.Fields().Len() {
		if ok, _ := hasFieldRule(md.Fields().Get(i)); ok {
			return true
		}
	}
	return false
}

// unruledFields lists the fields of md that carry no buf.validate rule. Exempt are
// bool fields (both values are meaningful), members of a oneof that carries a
// oneof rule (the rule covers the choice), and fields of a contract message type
// that has rules of its own (protovalidate validates it recursively, and callers
// check that type's fields too); the last are reported in covered.
func unruledFields(md protoreflect.MessageDescriptor) (problems, covered []string) {
	ruledOneofFields := make(map[protoreflect.Name]bool)
	if mr, err := protovalidate.ResolveMessageRules(md); err != nil {
		problems = append(problems, fmt.Sprintf("%s: message rules: %v", md.FullName(), err))
	} else {
		for _, o := range mr.GetOneof() {
			for _, f := range o.GetFields() {
				ruledOneofFields[protoreflect.Name(f)] = true
			}
		}
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if fd.Kind() == protoreflect.BoolKind && !fd.IsList() && !fd.IsMap() {
			continue
		}
		if ruledOneofFields[fd.Name()] {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if or, err := protovalidate.ResolveOneofRules(od); err == nil && or.GetRequired() {
				continue
			}
		}
		ok, err := hasFieldRule(fd)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: field rules: %v", fd.FullName(), err))
			continue
		}
		if ok {
			continue
		}
		if m := fd.Message(); m != nil && !fd.IsList() && !fd.IsMap() && inContract(m) && hasAnyRule(m) {
			covered = append(covered, string(fd.FullName()))
			continue
		}
		problems = append(problems, string(fd.FullName()))
	}
	return problems, covered
}

// wideIntegers lists the 64-bit integer fields of the messages of fd that allowed
// does not name.
func wideIntegers(fd protoreflect.FileDescriptor, allowed map[protoreflect.FullName]string) []string {
	var problems []string
	for _, md := range allMessages(fd) {
		for i := range md.Fields().Len() {
			f := md.Fields().Get(i)
			switch f.Kind() {
			case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind,
				protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
				if _, ok := allowed[f.FullName()]; !ok {
					problems = append(problems, fmt.Sprintf("%s is %v", f.FullName(), f.Kind()))
				}
			}
		}
	}
	return problems
}

func TestEveryMethodHasRuleAndIdempotency(t *testing.T) {
	var methods int
	var problems []string
	for _, sd := range contractServices(t) {
		for i := range sd.Methods().Len() {
			methods++
			problems = append(problems, methodProblems(sd.Methods().Get(i), sideEffectingReads)...)
		}
	}
	t.Logf("checked %d methods", methods)
	if len(problems) > 0 {
		t.Errorf("%d method problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	// A stale exception would excuse a later method of the same name.
	for name := range sideEffectingReads {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err != nil {
			t.Errorf("sideEffectingReads names %s, which is not in the contract", name)
		}
	}
}

func TestEveryRequestFieldHasRule(t *testing.T) {
	var fields int
	var problems, covered []string
	for _, md := range reachable(requestTypes(t)) {
		fields += md.Fields().Len()
		p, c := unruledFields(md)
		problems = append(problems, p...)
		covered = append(covered, c...)
	}
	t.Logf("checked %d fields of request messages and the messages they contain", fields)
	t.Logf("message fields covered by their type's own rules: %s", strings.Join(covered, ", "))
	if len(problems) > 0 {
		t.Errorf("%d request fields have no buf.validate rule:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

func TestNoWideIntegers(t *testing.T) {
	var problems []string
	for _, fd := range contractFiles() {
		problems = append(problems, wideIntegers(fd, wideIntegersAllowed)...)
	}
	if len(problems) > 0 {
		t.Errorf("64-bit integer fields outside the allowlist (use int32, or add the field to wideIntegersAllowed with a reason):\n%s",
			strings.Join(problems, "\n"))
	}
	// A stale allowlist entry would hide a later field of the same name.
	for name := range wideIntegersAllowed {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err != nil {
			t.Errorf("wideIntegersAllowed names %s, which is not in the contract", name)
		}
	}
}

// TestChecksBite runs the checks on a deliberately bad file and expects each
// defect to be reported, so that a check that reports nothing cannot pass
// unnoticed on the real contract.
func TestChecksBite(t *testing.T) {
	ruleOpts := func(rule *authzv1.Rule, level descriptorpb.MethodOptions_IdempotencyLevel) *descriptorpb.MethodOptions {
		opts := &descriptorpb.MethodOptions{IdempotencyLevel: level.Enum()}
		if rule != nil {
			proto.SetExtension(opts, authzv1.E_Rule, rule)
		}
		return opts
	}
	method := func(name string, opts *descriptorpb.MethodOptions) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{
			Name:       proto.String(name),
			InputType:  proto.String(".trialhub.bad.v1.GetThingRequest"),
			OutputType: proto.String(".trialhub.bad.v1.Thing"),
			Options:    opts,
		}
	}
	field := func(name string, number int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name:     proto.String(name),
			Number:   proto.Int32(number),
			Type:     typ.Enum(),
			Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			JsonName: proto.String(name),
		}
	}
	messageField := func(name string, number int32, typeName string) *descriptorpb.FieldDescriptorProto {
		f := field(name, number, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)
		f.TypeName = proto.String(typeName)
		return f
	}
	admin := &authzv1.Rule{Roles: []authzv1.Role{authzv1.Role_ROLE_ADMIN}}
	bad := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("trialhub/bad/v1/bad.proto"),
		Package:    proto.String("trialhub.bad.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"trialhub/authz/v1/authz.proto", "google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name: proto.String("GetThingRequest"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("thing_id", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
					field("size", 2, descriptorpb.FieldDescriptorProto_TYPE_FIXED64),
					field("dry_run", 3, descriptorpb.FieldDescriptorProto_TYPE_BOOL),
					// Message fields count as ruled only through a contract type
					// with rules of its own: Thing has none, Timestamp is not ours.
					messageField("thing", 4, ".trialhub.bad.v1.Thing"),
					messageField("at", 5, ".google.protobuf.Timestamp"),
				},
			},
			{Name: proto.String("Thing")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("BadService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				method("GetThing", nil),
				method("ListThings", ruleOpts(admin, descriptorpb.MethodOptions_IDEMPOTENT)),
				method("VerifyThing", ruleOpts(&authzv1.Rule{SubjectFromToken: true}, descriptorpb.MethodOptions_NO_SIDE_EFFECTS)),
				method("DeleteThing", ruleOpts(&authzv1.Rule{Roles: []authzv1.Role{authzv1.Role_ROLE_UNSPECIFIED}}, descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN)),
				// A correct method: no problem may be reported for it.
				method("GetOtherThing", ruleOpts(admin, descriptorpb.MethodOptions_NO_SIDE_EFFECTS)),
				// Excepted reads: the first is correct (IDEMPOTENT), the second
				// may not use the exception to be anything else.
				method("GetSecret", ruleOpts(admin, descriptorpb.MethodOptions_IDEMPOTENT)),
				method("GetOtherSecret", ruleOpts(admin, descriptorpb.MethodOptions_NO_SIDE_EFFECTS)),
			},
		}},
	}
	fd, err := protodesc.NewFile(bad, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("build the bad file: %v", err)
	}

	exceptions := map[protoreflect.FullName]string{
		"trialhub.bad.v1.BadService.GetSecret":      "audited read",
		"trialhub.bad.v1.BadService.GetOtherSecret": "audited read",
	}
	var got []string
	methods := fd.Services().Get(0).Methods()
	for i := range methods.Len() {
		got = append(got, methodProblems(methods.Get(i), exceptions)...)
	}
	want := []string{
		"trialhub.bad.v1.BadService.GetThing: no trialhub.authz.v1.rule option (the method is denied to everyone)",
		"trialhub.bad.v1.BadService.GetThing: idempotency_level is IDEMPOTENCY_UNKNOWN, want NO_SIDE_EFFECTS",
		"trialhub.bad.v1.BadService.ListThings: idempotency_level is IDEMPOTENT, want NO_SIDE_EFFECTS",
		"trialhub.bad.v1.BadService.VerifyThing: rule is neither public nor lists any role",
		"trialhub.bad.v1.BadService.DeleteThing: rule lists ROLE_UNSPECIFIED",
		"trialhub.bad.v1.BadService.GetOtherSecret: idempotency_level is NO_SIDE_EFFECTS, want IDEMPOTENT (listed as a side-effecting read)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("methodProblems on the bad file =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	unruled, _ := unruledFields(fd.Messages().ByName("GetThingRequest"))
	wantUnruled := []string{
		"trialhub.bad.v1.GetThingRequest.thing_id",
		"trialhub.bad.v1.GetThingRequest.size",
		"trialhub.bad.v1.GetThingRequest.thing",
		"trialhub.bad.v1.GetThingRequest.at",
	}
	if !slices.Equal(unruled, wantUnruled) {
		t.Errorf("unruledFields on the bad file = %v, want %v", unruled, wantUnruled)
	}

	wide := wideIntegers(fd, wideIntegersAllowed)
	if wantWide := []string{"trialhub.bad.v1.GetThingRequest.size is fixed64"}; !slices.Equal(wide, wantWide) {
		t.Errorf("wideIntegers on the bad file = %v, want %v", wide, wantWide)
	}
}
