package contract_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// Imported for their side effect: each registers its files in
	// protoregistry.GlobalFiles, where the tests find the contract.
	_ "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	_ "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	_ "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	_ "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	_ "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
)

// wantServices is every service of the v1 contract. Walking the descriptors must
// find exactly these, so that a walk that finds nothing cannot pass.
var wantServices = []protoreflect.FullName{
	"trialhub.epro.v1.EproService",
	"trialhub.notification.v1.NotificationService",
	"trialhub.patient.v1.AuditService",
	"trialhub.patient.v1.AuthService",
	"trialhub.patient.v1.PatientService",
	"trialhub.trial.v1.TrialService",
}

// contractFiles returns the registered files of the contract (package trialhub.*),
// by path.
func contractFiles() []protoreflect.FileDescriptor {
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "trialhub.") {
			files = append(files, fd)
		}
		return true
	})
	slices.SortFunc(files, func(a, b protoreflect.FileDescriptor) int { return strings.Compare(a.Path(), b.Path()) })
	return files
}

// contractServices returns every service of the contract and stops the test unless
// they are exactly wantServices.
func contractServices(t testing.TB) []protoreflect.ServiceDescriptor {
	t.Helper()
	var services []protoreflect.ServiceDescriptor
	var names []protoreflect.FullName
	for _, fd := range contractFiles() {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			services = append(services, sd)
			names = append(names, sd.FullName())
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, wantServices) {
		t.Fatalf("services of the contract = %v, want %v", names, wantServices)
	}
	return services
}

// requestTypes returns the input type of every method of the contract, in
// declaration order, each once.
func requestTypes(t testing.TB) []protoreflect.MessageDescriptor {
	t.Helper()
	var types []protoreflect.MessageDescriptor
	seen := make(map[protoreflect.FullName]bool)
	for _, sd := range contractServices(t) {
		for i := range sd.Methods().Len() {
			in := sd.Methods().Get(i).Input()
			if !seen[in.FullName()] {
				seen[in.FullName()] = true
				types = append(types, in)
			}
		}
	}
	return types
}

// inContract reports whether md is one of the contract's own messages (not, say,
// google.protobuf.Timestamp).
func inContract(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "trialhub.")
}

// reachable returns roots and every contract message reachable from them through
// fields (map entries excluded), each once, roots first.
func reachable(roots []protoreflect.MessageDescriptor) []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	seen := make(map[protoreflect.FullName]bool)
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || !inContract(md) {
			return
		}
		seen[md.FullName()] = true
		out = append(out, md)
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			switch {
			case fd.IsMap():
				if v := fd.MapValue(); v.Message() != nil {
					visit(v.Message())
				}
			case fd.Message() != nil:
				visit(fd.Message())
			}
		}
	}
	for _, md := range roots {
		visit(md)
	}
	return out
}

// allMessages returns every message declared in fd, nested ones (and map entries)
// included.
func allMessages(fd protoreflect.FileDescriptor) []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	var add func(ms protoreflect.MessageDescriptors)
	add = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			out = append(out, ms.Get(i))
			add(ms.Get(i).Messages())
		}
	}
	add(fd.Messages())
	return out
}
