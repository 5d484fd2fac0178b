// Command epro runs the ePRO service on its own: configuration from flags,
// TRIALHUB_* variables and an optional YAML file (platform.Config; see
// config.example.yaml).
package main

import (
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/platform"
)

func main() { platform.Main(epro.Platform()) }
