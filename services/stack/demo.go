package stack

import (
	"context"
	"fmt"
	"slices"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// withDemoScopes runs after svc's seed: once the trial service's seed has made the
// demo trial and its sites, the demo investigator and analyst that the patient
// service seeded before them are scoped to those ids, so the printed logins see the
// demo trial. A rerun with the scopes already right changes nothing (and so
// revokes no session).
func withDemoScopes(svc platform.Service) platform.Service {
	seed := svc.Seed
	svc.Seed = func(ctx context.Context, s *platform.Seeder) error {
		if seed != nil {
			if err := seed(ctx, s); err != nil {
				return err
			}
		}
		return scopeDemoStaff(ctx, s)
	}
	return svc
}

func scopeDemoStaff(ctx context.Context, s *platform.Seeder) error {
	trialID, siteID := s.Get("demo.trial_id"), s.Get("demo.site_id")
	if trialID == "" || siteID == "" {
		return nil
	}
	admin, err := s.Client(auth.Caller{Subject: "seed-admin", Role: authzv1.Role_ROLE_ADMIN})
	if err != nil {
		return err
	}
	auths := patientv1connect.NewAuthServiceClient(admin)
	list, err := auths.ListStaffAccounts(ctx, &patientv1.ListStaffAccountsRequest{PageSize: 100})
	if err != nil {
		return fmt.Errorf("list the demo staff: %w", err)
	}
	want := map[string][2][]string{ // username -> sites, trials
		"investigator": {{siteID}, {trialID}},
		"analyst":      {nil, {trialID}},
	}
	for _, a := range list.GetAccounts() {
		scopes, ok := want[a.GetUsername()]
		if !ok || (slices.Equal(a.GetSiteIds(), scopes[0]) && slices.Equal(a.GetTrialIds(), scopes[1])) {
			continue
		}
		if _, err := auths.UpdateStaffAccount(ctx, &patientv1.UpdateStaffAccountRequest{
			StaffId: a.GetStaffId(), Role: a.GetRole(), SiteIds: scopes[0], TrialIds: scopes[1],
			Reason: "Dev stack: scoped to the seeded demo trial and site",
		}); err != nil {
			return fmt.Errorf("scope %s to the demo trial: %w", a.GetUsername(), err)
		}
	}
	return nil
}
