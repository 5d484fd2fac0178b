package epro

// SeedRequest is the request the seed sends for a shipped instrument, for tests.
var SeedRequest = seedRequest

// MarshalAnswers is the stored form of answers, for the benchmark's plain insert.
var MarshalAnswers = marshalAnswers
