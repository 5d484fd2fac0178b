// Package contract holds the tests that guard the TrialHub v1 contract
// (proto/trialhub/...) as it is generated into gen/go. They fail when a method has
// no authorization rule or an empty one, when a Get/List/Verify method may have side
// effects, when a request field carries no validation rule, when a 64-bit integer
// creeps into a message, and when a validation rule does not reject what it should
// with the rule id and field path clients rely on. The package has no code of its
// own: run it with `go test ./contract/`.
package contract
