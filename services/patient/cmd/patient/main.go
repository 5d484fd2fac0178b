// Command patient runs the patient service on its own: configuration from
// flags, TRIALHUB_* variables and an optional YAML file (platform.Config), plus
// the service's own TRIALHUB_PATIENT_* variables (see config.example.yaml).
//
// The kit's Run verifies tokens only through TRIALHUB_JWKS_URL; the patient
// service is the issuer, so point it at its own document:
// TRIALHUB_JWKS_URL=http://127.0.0.1:8080/.well-known/jwks.json.
package main

import (
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform"
)

func main() { platform.Main(patient.Platform()) }
