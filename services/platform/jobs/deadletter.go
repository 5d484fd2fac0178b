package jobs

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Discarded lists dead letters: jobs that failed on every attempt they had (also
// those rescued with none left), most recently discarded first, at most first
// of them (1 to 10,000; 0 means 100), after cursor (nil for the first page; the
// result's LastCursor for the next). Each job keeps its errors, one per attempt
// (rivertype.JobRow.Errors).
func (q *Queue) Discarded(ctx context.Context, first int, after *river.JobListCursor) (*river.JobListResult, error) {
	if first == 0 {
		first = 100
	}
	params := river.NewJobListParams().
		States(rivertype.JobStateDiscarded).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).
		First(first)
	if after != nil {
		params = params.After(after)
	}
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("jobs: list discarded jobs: %w", err)
	}
	return res, nil
}

// Retry re-queues the job id, typically a dead letter: it becomes available at
// once (its attempts go on, with one more allowed when it had used them all) and
// keeps its idempotency key, so a receiver that saw an earlier attempt's effect
// answers it again rather than repeating it. A running job is left alone.
func (q *Queue) Retry(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	job, err := q.client.JobRetry(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("jobs: retry job %d: %w", id, err)
	}
	return job, nil
}
