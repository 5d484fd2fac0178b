// Command trial runs the trial service alone: its own port and PostgreSQL
// database, configured by flags, TRIALHUB_* variables or a YAML file (see
// services/platform/config.go).
package main

import (
	_ "time/tzdata" // a minimal container computes the same windows

	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/trial"
)

func main() { platform.Main(trial.Platform()) }
