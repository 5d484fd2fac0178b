module github.com/trialhub/trialhub/gen/go

go 1.26.0
