module github.com/trialhub/trialhub/services/epro

go 1.26.0

replace github.com/trialhub/trialhub/gen/go => ../../gen/go

replace github.com/trialhub/trialhub/services/platform => ../platform

require (
	github.com/trialhub/trialhub/gen/go v0.0.0
	google.golang.org/protobuf v1.36.12
)

require buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2 // indirect
