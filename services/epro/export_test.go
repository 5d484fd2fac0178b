package epro

// SeedRequest is the request the seed sends for a shipped instrument, for tests.
var SeedRequest = seedRequest
