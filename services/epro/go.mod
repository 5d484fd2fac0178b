module github.com/trialhub/trialhub/services/epro

go 1.26.0

replace github.com/trialhub/trialhub/gen/go => ../../gen/go

replace github.com/trialhub/trialhub/services/platform => ../platform
