package notes

import (
	"fmt"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/structpb" // google/protobuf/struct.proto in the registry

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// The notes API is built from a descriptor in code rather than a .proto file: it is
// a test fixture, not part of the contract, so it stays out of proto/, buf lint and
// buf breaking. Its messages are google.protobuf.Struct, so tests build them from
// maps. Each method still carries a trialhub.authz.v1.rule, so the kit authorizes
// it like any contract method.

// Procedures of the notes service.
const (
	// AddNoteProcedure writes a note: {"text", "idempotency_key", "fail_job",
	// "rollback"} -> {"id", "text"}. Admins and investigators.
	AddNoteProcedure = "/platformtest.notes.v1.NotesService/AddNote"
	// CountNotesProcedure counts notes and deliveries: {} -> {"notes",
	// "deliveries"}. Admins; NO_SIDE_EFFECTS, so GET works.
	CountNotesProcedure = "/platformtest.notes.v1.NotesService/CountNotes"
)

var descriptor = func() protoreflect.ServiceDescriptor {
	rule := func(roles ...authzv1.Role) *descriptorpb.MethodOptions {
		opts := &descriptorpb.MethodOptions{}
		proto.SetExtension(opts, authzv1.E_Rule, &authzv1.Rule{Roles: roles})
		return opts
	}
	noSideEffects := rule(authzv1.Role_ROLE_ADMIN)
	noSideEffects.IdempotencyLevel = descriptorpb.MethodOptions_NO_SIDE_EFFECTS.Enum()
	file := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("platformtest/notes/v1/notes.proto"),
		Package:    proto.String("platformtest.notes.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/struct.proto", "trialhub/authz/v1/authz.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("NotesService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				{
					Name:       proto.String("AddNote"),
					InputType:  proto.String(".google.protobuf.Struct"),
					OutputType: proto.String(".google.protobuf.Struct"),
					Options:    rule(authzv1.Role_ROLE_ADMIN, authzv1.Role_ROLE_INVESTIGATOR),
				},
				{
					Name:       proto.String("CountNotes"),
					InputType:  proto.String(".google.protobuf.Struct"),
					OutputType: proto.String(".google.protobuf.Struct"),
					Options:    noSideEffects,
				},
			},
		}},
	}
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("notes descriptor: %v", err))
	}
	return fd.Services().Get(0)
}()

// Spec returns the connect spec of a notes procedure.
func Spec(procedure string) connect.Spec {
	for i := range descriptor.Methods().Len() {
		md := descriptor.Methods().Get(i)
		if "/"+string(descriptor.FullName())+"/"+string(md.Name()) == procedure {
			level := connect.IdempotencyUnknown
			if md.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
				level = connect.IdempotencyNoSideEffects
			}
			return connect.Spec{StreamType: connect.StreamTypeUnary, Schema: md, Procedure: procedure, IdempotencyLevel: level}
		}
	}
	panic("notes: no procedure " + procedure)
}
