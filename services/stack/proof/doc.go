// Package proof holds the platform's fault-injection proofs: tests that run the
// services on real listeners and a real PostgreSQL, break something underneath
// them (an overload, a database restart, a hanging push vendor, a service that is
// down) and assert what a patient and a site would see.
//
// Each proof takes a few seconds in `make test`. With TRIALHUB_CHAOS=1 (`make
// chaos`) each runs longer, with more load, and prints its figures per phase:
// submissions, p50 and p99, deliveries, duplicates, losses, shed requests and
// breaker transitions.
package proof
