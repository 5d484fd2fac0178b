package epro

// SeedRequest is the request the seed sends for a shipped instrument, for tests.
var SeedRequest = seedRequest

// MarshalAnswers is the stored form of answers, for the benchmark's plain insert.
var MarshalAnswers = marshalAnswers

// SetExportChunk sets how many rows an export reads at a time and reports each
// chunk's size to seen, until the returned function restores the default.
func SetExportChunk(n int, seen func(rows int)) (restore func()) {
	old := exportChunk.Load()
	exportChunk.Store(int64(n))
	exportChunkRead.Store(&seen)
	return func() { exportChunk.Store(old); exportChunkRead.Store(nil) }
}
