package epro

import (
	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
)

// preconditionError is FAILED_PRECONDITION with the contract's typed
// PreconditionFailure detail, so clients act on the reason without parsing text.
// detail may add the window or the existing response; nil means the reason alone.
func preconditionError(reason eprov1.PreconditionReason, msg string, detail *eprov1.PreconditionFailure) *connect.Error {
	if detail == nil {
		detail = &eprov1.PreconditionFailure{}
	}
	detail.Reason = reason
	cerr := connect.NewError(connect.CodeFailedPrecondition, msg)
	value, err := proto.Marshal(detail)
	if err != nil { // cannot happen for a well-formed message; the code still says enough
		return cerr
	}
	return cerr.WithDetail(&connect.ErrorDetail{Type: string(detail.ProtoReflect().Descriptor().FullName()), Value: value})
}
