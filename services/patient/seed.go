package patient

import (
	"context"
	"fmt"

	"connectrpc.com/connect/v2"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// Demo ids and logins of the dev stack (the trial service's seed is expected to
// create the site and trial with these ids).
const (
	DemoSiteID       = "5e1f0000-0000-4000-8000-000000000001"
	DemoTrialID      = "7a1a0000-0000-4000-8000-000000000001"
	DemoPassword     = "trialhub-dev-password"
	DemoPatientPhone = "+4915100000001"
)

// seed creates the dev stack's staff accounts (admin, investigator of the demo
// site and trial, analyst of the demo trial) and invites a demo patient, through
// the API, and prints the logins. Idempotency keys and ALREADY_EXISTS make a
// rerun add nothing.
func seed(ctx context.Context, s *platform.Seeder) error {
	admin, err := s.Client(auth.Caller{Subject: "seed-admin", Role: authzv1.Role_ROLE_ADMIN})
	if err != nil {
		return err
	}
	auths := patientv1connect.NewAuthServiceClient(admin)
	staff := []*patientv1.CreateStaffAccountRequest{
		{Username: "admin", DisplayName: "Demo Administrator", Role: authzv1.Role_ROLE_ADMIN},
		{Username: "investigator", DisplayName: "Dr. Demo Investigator", Role: authzv1.Role_ROLE_INVESTIGATOR, SiteIds: []string{DemoSiteID}, TrialIds: []string{DemoTrialID}},
		{Username: "analyst", DisplayName: "Demo Analyst", Role: authzv1.Role_ROLE_ANALYST, TrialIds: []string{DemoTrialID}},
	}
	fmt.Fprintln(s.Out, "  patient:    staff logins (Login with username + password):")
	for _, req := range staff {
		req.Password, req.IdempotencyKey = DemoPassword, "seed-staff-"+req.Username
		if _, err := auths.CreateStaffAccount(ctx, req); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return fmt.Errorf("create staff %s: %w", req.Username, err)
		}
		fmt.Fprintf(s.Out, "              %-13s password %s\n", req.Username, DemoPassword)
	}
	inv, err := s.Client(auth.Caller{Subject: "seed-investigator", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{DemoSiteID}, Trials: []string{DemoTrialID}})
	if err != nil {
		return err
	}
	res, err := patientv1connect.NewPatientServiceClient(inv).InviteParticipant(ctx, &patientv1.InviteParticipantRequest{
		FullName: "Demo Participant", NationalId: "DEMO-0001", NationalIdCountry: "DE", Mobile: DemoPatientPhone,
		SiteId: DemoSiteID, TrialId: DemoTrialID, IdempotencyKey: "seed-demo-patient-1",
	})
	switch {
	case err == nil:
		s.Set("demo.subject_uuid", res.GetSubjectUuid())
		fmt.Fprintf(s.Out, "  patient:    demo patient %s invited: ActivateAccount with mobile %s and code %s\n", res.GetSubjectUuid(), DemoPatientPhone, res.GetActivationCode())
	case connect.CodeOf(err) == connect.CodeFailedPrecondition, connect.CodeOf(err) == connect.CodeAlreadyExists:
		fmt.Fprintf(s.Out, "  patient:    demo patient already activated: Login with mobile %s\n", DemoPatientPhone)
	default:
		return fmt.Errorf("invite the demo patient: %w", err)
	}
	return nil
}
