// Package worklist follows the trial service's worklist (ListWorklist) trial by
// trial from a cursor, for the services that keep their own copy of subjects'
// planned visits: ePRO (tasks, windows) and notification (reminders). Each keeps
// its cursor, the newest updated_at it has applied per trial, in its own
// database, and applies a page in one transaction with the cursor's advance.
package worklist

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
)

// Overlap is how far before its cursor a follower resumes: the trial service
// commits changes in any order (its contract says so), and a copy that only
// moves forward takes a visit read twice in its stride.
const Overlap = 10 * time.Second

// Trials calls fn for every trial the caller may see, page by page; an error
// of fn stops the walk and names the trial.
func Trials(ctx context.Context, c trialv1connect.TrialServiceClient, fn func(context.Context, *trialv1.Trial) error) error {
	req := &trialv1.ListTrialsRequest{}
	for {
		res, err := c.ListTrials(ctx, req)
		if err != nil {
			return fmt.Errorf("list trials: %w", err)
		}
		for _, t := range res.GetTrials() {
			if err := fn(ctx, t); err != nil {
				return fmt.Errorf("trial %s: %w", t.GetTrialId(), err)
			}
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return nil
		}
	}
}

// Visits calls page with each page of trialID's worklist changed since cursor,
// less Overlap; a zero cursor reads the trial's whole worklist.
func Visits(ctx context.Context, c trialv1connect.TrialServiceClient, trialID string, cursor time.Time,
	page func(context.Context, []*trialv1.SubjectVisit) error) error {
	req := &trialv1.ListWorklistRequest{TrialId: trialID}
	if !cursor.IsZero() {
		req.UpdatedAfter = timestamppb.New(cursor.Add(-Overlap))
	}
	for {
		res, err := c.ListWorklist(ctx, req)
		if err != nil {
			return fmt.Errorf("list worklist: %w", err)
		}
		if err := page(ctx, res.GetVisits()); err != nil {
			return err
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return nil
		}
	}
}

// UpdatedAt is a visit's updated_at at the databases' precision (PostgreSQL
// keeps microseconds, rounding), so that a visit read again compares equal to
// the copy made of it and a cursor stored and read back is unchanged.
func UpdatedAt(v *trialv1.SubjectVisit) time.Time {
	return v.GetUpdatedAt().AsTime().Round(time.Microsecond)
}
