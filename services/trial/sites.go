package trial

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"golang.org/x/text/language"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/enrollment"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

// AddSite adds an OPEN site to a trial that is not finished.
func (s *Service) AddSite(ctx context.Context, req *trialv1.AddSiteRequest) (*trialv1.AddSiteResponse, error) {
	if _, err := plan.LoadZone(req.GetTimeZone()); err != nil {
		return nil, invalid("time_zone", "not a time zone of the IANA tz database")
	}
	if !isCountry(req.GetCountryCode()) {
		return nil, invalid("country_code", "not an assigned ISO 3166-1 country code")
	}
	return write(ctx, s, req.GetIdempotencyKey(), req, "site",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.AddSiteResponse, error) {
			t, err := openTrial(ctx, c, req.GetTrialId())
			if err != nil {
				return nil, err
			}
			st, err := c.Site.Create().SetID(uuid.NewString()).SetTrialID(t.ID).SetSiteCode(req.GetSiteCode()).
				SetName(req.GetName()).SetCountryCode(req.GetCountryCode()).SetTimeZone(req.GetTimeZone()).
				SetStatus(int32(trialv1.SiteStatus_SITE_STATUS_OPEN)).SetCreatedAt(s.stamp()).Save(ctx)
			if err != nil {
				return nil, fmt.Errorf("add site: %w", err)
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "SITE_ADDED", RecordType: "SITE", RecordID: st.ID,
				TrialID: t.ID, SiteID: st.ID, Field: "site_code", NewValue: st.SiteCode}); err != nil {
				return nil, err
			}
			return &trialv1.AddSiteResponse{Site: siteMsg(st)}, nil
		})
}

// isCountry reports whether code is an ISO 3166-1 alpha-2 code assigned to a
// country (not "ZZ", "EU" or a private-use code), by the CLDR data of x/text.
func isCountry(code string) bool {
	r, err := language.ParseRegion(code)
	return err == nil && r.IsCountry()
}

func lockSite(ctx context.Context, c *ent.Client, id string) (*ent.Site, error) {
	st, err := c.Site.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound("site")
	}
	if err != nil {
		return nil, err
	}
	if trialv1.SiteStatus(st.Status) == trialv1.SiteStatus_SITE_STATUS_CLOSED {
		return nil, precondition("site_id", "the site is closed")
	}
	return st, nil
}

// UpdateSite changes the fields update_mask names; the zone only while the
// site has no enrollments.
func (s *Service) UpdateSite(ctx context.Context, req *trialv1.UpdateSiteRequest) (*trialv1.UpdateSiteResponse, error) {
	paths := slices.Compact(slices.Sorted(slices.Values(req.GetUpdateMask().GetPaths())))
	if slices.Contains(paths, "country_code") && !isCountry(req.GetCountryCode()) {
		return nil, invalid("country_code", "not an assigned ISO 3166-1 country code")
	}
	if slices.Contains(paths, "time_zone") {
		if _, err := plan.LoadZone(req.GetTimeZone()); err != nil {
			return nil, invalid("time_zone", "not a time zone of the IANA tz database")
		}
	}
	return write(ctx, s, req.GetIdempotencyKey(), req, "site",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.UpdateSiteResponse, error) {
			st, err := lockSite(ctx, c, req.GetSiteId())
			if err != nil {
				return nil, err
			}
			u := st.Update()
			var events []audit.Event
			ev := func(field, old, new string) {
				events = append(events, audit.Event{Action: "SITE_UPDATED", RecordType: "SITE", RecordID: st.ID,
					TrialID: st.TrialID, SiteID: st.ID, Field: field, OldValue: old, NewValue: new, Reason: req.GetReason()})
			}
			for _, p := range paths {
				switch p {
				case "name":
					u.SetName(req.GetName())
					ev(p, st.Name, req.GetName())
				case "country_code":
					u.SetCountryCode(req.GetCountryCode())
					ev(p, st.CountryCode, req.GetCountryCode())
				case "time_zone":
					n, err := c.Enrollment.Query().Where(enrollment.SiteID(st.ID)).Count(ctx)
					if err != nil {
						return nil, err
					}
					if n > 0 {
						return nil, precondition("time_zone", "the site has enrollments, whose dates are in its zone")
					}
					u.SetTimeZone(req.GetTimeZone())
					ev(p, st.TimeZone, req.GetTimeZone())
				}
			}
			if st, err = u.Save(ctx); err != nil {
				return nil, err
			}
			for _, e := range events {
				if _, err := s.audit.Append(ctx, tx, e); err != nil {
					return nil, err
				}
			}
			return &trialv1.UpdateSiteResponse{Site: siteMsg(st)}, nil
		})
}

// CloseSite closes a site for new enrollments.
func (s *Service) CloseSite(ctx context.Context, req *trialv1.CloseSiteRequest) (*trialv1.CloseSiteResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "site",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.CloseSiteResponse, error) {
			st, err := lockSite(ctx, c, req.GetSiteId())
			if err != nil {
				return nil, err
			}
			if st, err = st.Update().SetStatus(int32(trialv1.SiteStatus_SITE_STATUS_CLOSED)).SetClosedAt(s.stamp()).Save(ctx); err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "SITE_CLOSED", RecordType: "SITE", RecordID: st.ID,
				TrialID: st.TrialID, SiteID: st.ID, Field: "status", OldValue: trialv1.SiteStatus_SITE_STATUS_OPEN.String(),
				NewValue: trialv1.SiteStatus_SITE_STATUS_CLOSED.String(), Reason: req.GetReason()}); err != nil {
				return nil, err
			}
			return &trialv1.CloseSiteResponse{Site: siteMsg(st)}, nil
		})
}
