package trial

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/site"
	enttrial "github.com/trialhub/trialhub/services/trial/ent/trial"
)

// transitions are the allowed trial status changes (see UpdateTrialStatus).
var transitions = map[trialv1.TrialStatus][]trialv1.TrialStatus{
	trialv1.TrialStatus_TRIAL_STATUS_PLANNED: {trialv1.TrialStatus_TRIAL_STATUS_RECRUITING, trialv1.TrialStatus_TRIAL_STATUS_TERMINATED},
	trialv1.TrialStatus_TRIAL_STATUS_RECRUITING: {trialv1.TrialStatus_TRIAL_STATUS_ACTIVE_NOT_RECRUITING,
		trialv1.TrialStatus_TRIAL_STATUS_SUSPENDED, trialv1.TrialStatus_TRIAL_STATUS_TERMINATED},
	trialv1.TrialStatus_TRIAL_STATUS_ACTIVE_NOT_RECRUITING: {trialv1.TrialStatus_TRIAL_STATUS_RECRUITING,
		trialv1.TrialStatus_TRIAL_STATUS_SUSPENDED, trialv1.TrialStatus_TRIAL_STATUS_COMPLETED, trialv1.TrialStatus_TRIAL_STATUS_TERMINATED},
	trialv1.TrialStatus_TRIAL_STATUS_SUSPENDED: {trialv1.TrialStatus_TRIAL_STATUS_RECRUITING,
		trialv1.TrialStatus_TRIAL_STATUS_ACTIVE_NOT_RECRUITING, trialv1.TrialStatus_TRIAL_STATUS_TERMINATED},
}

func readOnly(status int32) bool {
	s := trialv1.TrialStatus(status)
	return s == trialv1.TrialStatus_TRIAL_STATUS_COMPLETED || s == trialv1.TrialStatus_TRIAL_STATUS_TERMINATED
}

// CreateTrial creates a PLANNED trial.
func (s *Service) CreateTrial(ctx context.Context, req *trialv1.CreateTrialRequest) (*trialv1.CreateTrialResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "trial",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.CreateTrialResponse, error) {
			now := s.stamp()
			t, err := c.Trial.Create().SetID(uuid.NewString()).SetProtocolCode(req.GetProtocolCode()).
				SetTitle(req.GetTitle()).SetPhase(int32(req.GetPhase())).SetSponsor(req.GetSponsor()).
				SetStatus(int32(trialv1.TrialStatus_TRIAL_STATUS_PLANNED)).SetRegistryIds(registryIDs(req.GetRegistryIds())).
				SetDescription(req.GetDescription()).SetNillableLateSubmissionGraceHours(req.LateSubmissionGraceHours).
				SetCreatedAt(now).SetUpdatedAt(now).Save(ctx)
			if err != nil {
				return nil, fmt.Errorf("create trial: %w", err)
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "TRIAL_CREATED", RecordType: "TRIAL", RecordID: t.ID,
				TrialID: t.ID, Field: "protocol_code", NewValue: t.ProtocolCode}); err != nil {
				return nil, err
			}
			return &trialv1.CreateTrialResponse{Trial: trialMsg(t)}, nil
		})
}

// visibleTrial loads a trial the caller may see (NOT_FOUND otherwise):
// investigators only trials in their trial scope with one of their sites,
// analysts only trials in their scope.
func (s *Service) visibleTrial(ctx context.Context, c *ent.Client, id string) (*ent.Trial, error) {
	who := caller(ctx)
	if !who.CanAccessTrial(id) {
		return nil, notFound("trial")
	}
	t, err := c.Trial.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound("trial")
	}
	if err != nil {
		return nil, db.ConnectError(err, "trial")
	}
	if who.Role == authzv1.Role_ROLE_INVESTIGATOR {
		n, err := c.Site.Query().Where(site.TrialID(id), site.IDIn(who.Sites...)).Count(ctx)
		if err != nil {
			return nil, db.ConnectError(err, "trial")
		}
		if n == 0 {
			return nil, notFound("trial")
		}
	}
	return t, nil
}

// GetTrial returns a trial, its visible sites and a schedule version.
func (s *Service) GetTrial(ctx context.Context, req *trialv1.GetTrialRequest) (*trialv1.GetTrialResponse, error) {
	t, err := s.visibleTrial(ctx, s.ent, req.GetTrialId())
	if err != nil {
		return nil, err
	}
	q := s.ent.Site.Query().Where(site.TrialID(t.ID)).Order(ent.Asc(site.FieldSiteCode))
	if who := caller(ctx); who.Role == authzv1.Role_ROLE_INVESTIGATOR {
		q = q.Where(site.IDIn(who.Sites...))
	}
	sites, err := q.All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "sites")
	}
	res := &trialv1.GetTrialResponse{Trial: trialMsg(t)}
	for _, st := range sites {
		res.Sites = append(res.Sites, siteMsg(st))
	}
	version := req.GetVisitScheduleVersion()
	if version == 0 {
		version = t.CurrentScheduleVersion
	}
	if version > 0 {
		sch, err := s.schedule(ctx, s.ent, t.ID, version)
		if err != nil {
			return nil, err
		}
		res.VisitSchedule = scheduleMsg(sch)
	}
	return res, nil
}

// ListTrials lists the trials the caller may see, by protocol code.
func (s *Service) ListTrials(ctx context.Context, req *trialv1.ListTrialsRequest) (*trialv1.ListTrialsResponse, error) {
	cur, err := readCursor(req, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	q := s.ent.Trial.Query().Order(ent.Asc(enttrial.FieldProtocolCode))
	switch who := caller(ctx); who.Role {
	case authzv1.Role_ROLE_INVESTIGATOR:
		ids, err := s.ent.Site.Query().Where(site.IDIn(who.Sites...), site.TrialIDIn(who.Trials...)).
			Unique(true).Select(site.FieldTrialID).Strings(ctx)
		if err != nil {
			return nil, db.ConnectError(err, "trials")
		}
		q = q.Where(enttrial.IDIn(ids...))
	case authzv1.Role_ROLE_ANALYST:
		q = q.Where(enttrial.IDIn(who.Trials...))
	}
	if len(req.GetStatuses()) > 0 {
		q = q.Where(enttrial.StatusIn(enumInts(req.GetStatuses())...))
	}
	if len(req.GetPhases()) > 0 {
		q = q.Where(enttrial.PhaseIn(enumInts(req.GetPhases())...))
	}
	if text := strings.TrimSpace(req.GetQuery()); text != "" {
		q = q.Where(enttrial.Or(enttrial.ProtocolCodeContainsFold(text), enttrial.TitleContainsFold(text), enttrial.SponsorContainsFold(text)))
	}
	if cur.Key != "" {
		q = q.Where(enttrial.ProtocolCodeGT(cur.Key))
	}
	size := pageSize(req.GetPageSize(), 50)
	rows, err := q.Limit(size + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "trials")
	}
	res := &trialv1.ListTrialsResponse{}
	if len(rows) > size {
		rows = rows[:size]
		last := rows[size-1]
		res.NextPageToken = writeCursor(req, last.ProtocolCode, last.ID)
	}
	for _, t := range rows {
		res.Trials = append(res.Trials, trialMsg(t))
	}
	return res, nil
}

func enumInts[E ~int32](in []E) []int32 {
	out := make([]int32, len(in))
	for i, v := range in {
		out[i] = int32(v)
	}
	return out
}

// lockTrial loads a trial for a change inside a write.
func lockTrial(ctx context.Context, c *ent.Client, id string) (*ent.Trial, error) {
	t, err := c.Trial.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound("trial")
	}
	return t, err
}

// openTrial loads a trial that may still change: COMPLETED and TERMINATED
// trials are read-only (FAILED_PRECONDITION).
func openTrial(ctx context.Context, c *ent.Client, id string) (*ent.Trial, error) {
	t, err := lockTrial(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if readOnly(t.Status) {
		return nil, precondition("trial_id", "a %s trial is read-only", trialv1.TrialStatus(t.Status))
	}
	return t, nil
}

// UpdateTrialStatus moves a trial along its life cycle.
func (s *Service) UpdateTrialStatus(ctx context.Context, req *trialv1.UpdateTrialStatusRequest) (*trialv1.UpdateTrialStatusResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "trial",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.UpdateTrialStatusResponse, error) {
			t, err := lockTrial(ctx, c, req.GetTrialId())
			if err != nil {
				return nil, err
			}
			from, to := trialv1.TrialStatus(t.Status), req.GetStatus()
			if !slices.Contains(transitions[from], to) {
				return nil, precondition("status", "a %s trial cannot become %s", from, to)
			}
			if to == trialv1.TrialStatus_TRIAL_STATUS_RECRUITING {
				if t.CurrentScheduleVersion == 0 {
					return nil, precondition("status", "the trial has no visit schedule yet")
				}
				open, err := c.Site.Query().Where(site.TrialID(t.ID), site.Status(int32(trialv1.SiteStatus_SITE_STATUS_OPEN))).Count(ctx)
				if err != nil {
					return nil, err
				}
				if open == 0 {
					return nil, precondition("status", "the trial has no open site")
				}
			}
			// Conditional on the status read: of two concurrent changes one wins, the
			// other is refused as a transition from a status the trial no longer has.
			n, err := c.Trial.Update().Where(enttrial.ID(t.ID), enttrial.Status(int32(from))).
				SetStatus(int32(to)).SetUpdatedAt(s.stamp()).Save(ctx)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, connect.NewError(connect.CodeAborted, "status: the trial changed meanwhile; reload and retry")
			}
			if t, err = c.Trial.Get(ctx, t.ID); err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "TRIAL_STATUS_CHANGED", RecordType: "TRIAL", RecordID: t.ID,
				TrialID: t.ID, Field: "status", OldValue: from.String(), NewValue: to.String(), Reason: req.GetReason()}); err != nil {
				return nil, err
			}
			return &trialv1.UpdateTrialStatusResponse{Trial: trialMsg(t)}, nil
		})
}

// UpdateTrial changes the fields update_mask names.
func (s *Service) UpdateTrial(ctx context.Context, req *trialv1.UpdateTrialRequest) (*trialv1.UpdateTrialResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "trial",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.UpdateTrialResponse, error) {
			t, err := openTrial(ctx, c, req.GetTrialId())
			if err != nil {
				return nil, err
			}
			old := trialMsg(t)
			u := t.Update().SetUpdatedAt(s.stamp())
			type change struct{ field, old, new string }
			var changes []change
			for _, path := range slices.Compact(slices.Sorted(slices.Values(req.GetUpdateMask().GetPaths()))) {
				switch path {
				case "title":
					u.SetTitle(req.GetTitle())
					changes = append(changes, change{path, old.GetTitle(), req.GetTitle()})
				case "description":
					u.SetDescription(req.GetDescription())
					changes = append(changes, change{path, old.GetDescription(), req.GetDescription()})
				case "late_submission_grace_hours":
					u.SetLateSubmissionGraceHours(req.GetLateSubmissionGraceHours())
					changes = append(changes, change{path, strconv.Itoa(int(old.GetLateSubmissionGraceHours())),
						strconv.Itoa(int(req.GetLateSubmissionGraceHours()))})
				case "registry_ids":
					u.SetRegistryIds(registryIDs(req.GetRegistryIds()))
					changes = append(changes, change{path, registryText(old.GetRegistryIds()), registryText(req.GetRegistryIds())})
				}
			}
			if t, err = u.Save(ctx); err != nil {
				return nil, err
			}
			for _, ch := range changes {
				if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "TRIAL_UPDATED", RecordType: "TRIAL", RecordID: t.ID,
					TrialID: t.ID, Field: ch.field, OldValue: ch.old, NewValue: ch.new, Reason: req.GetReason()}); err != nil {
					return nil, err
				}
			}
			return &trialv1.UpdateTrialResponse{Trial: trialMsg(t)}, nil
		})
}

func registryText(ids []*trialv1.RegistryId) string {
	parts := make([]string, 0, len(ids))
	for _, r := range ids {
		parts = append(parts, r.GetRegistry()+"="+r.GetId())
	}
	return strings.Join(parts, ", ")
}
