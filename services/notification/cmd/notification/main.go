// Command notification runs the notification service on its own: configuration
// from flags, TRIALHUB_* variables and an optional YAML file (platform.Config;
// see config.example.yaml).
package main

import (
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform"
)

func main() { platform.Main(notification.Platform()) }
