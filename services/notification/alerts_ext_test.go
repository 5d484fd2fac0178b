package notification_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

func TestAlertRecipientsAreResolvedWhenSent(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	alice, bob := uuid.NewString(), uuid.NewString()
	f.device(t, staffCaller(alice, f.site), "tok-alice", "en")
	f.device(t, staffCaller(bob, f.site), "tok-bob", "en")
	f.staff.set(f.site, alice, bob)
	first, err := f.epro.SendNotification(ctx, f.alert("epro:alert:first-response"))
	if err != nil {
		t.Fatal(err)
	}
	got := f.waitStatus(t, first.GetNotification().GetNotificationId(), stDelivered)
	if got.GetDeviceCount() != 2 || got.GetSafetyAlertId() == "" {
		t.Fatalf("first alert = %v", got)
	}
	// Bob leaves the site: the next alert reaches Alice only.
	f.staff.set(f.site, alice)
	second, err := f.epro.SendNotification(ctx, f.alert("epro:alert:second-response"))
	if err != nil {
		t.Fatal(err)
	}
	got = f.waitStatus(t, second.GetNotification().GetNotificationId(), stDelivered)
	if got.GetDeviceCount() != 1 {
		t.Fatalf("second alert = %v", got)
	}
	var bobs int
	for _, m := range f.vendor.Messages(fakevendor.Push) {
		if m.Token == "tok-bob" {
			bobs++
		}
	}
	if bobs != 1 {
		t.Fatalf("bob got %d pushes, want 1 (the first alert only)", bobs)
	}
	f.staff.mu.Lock()
	for _, c := range f.staff.callers {
		if c != notification.Name {
			t.Errorf("ListSiteStaff called as %q", c)
		}
	}
	f.staff.mu.Unlock()
}

func TestUnacknowledgedAlertEscalatesToTrialStaffThenAdmins(t *testing.T) {
	f := setup(t, notification.WithEscalateAfter(2*time.Second))
	ctx := context.Background()
	site, other, admin := uuid.NewString(), uuid.NewString(), uuid.NewString()
	f.device(t, staffCaller(site, f.site), "tok-site", "en")
	f.device(t, staffCaller(other, f.other), "tok-other", "en")
	f.device(t, auth.Caller{Subject: admin, Role: authzv1.Role_ROLE_ADMIN}, "tok-admin", "en")
	f.staff.set(f.site, site)
	f.staff.set(f.other, other)
	res, err := f.epro.SendNotification(ctx, f.alert("epro:alert:escalating-one"))
	if err != nil {
		t.Fatal(err)
	}
	alertID := res.GetNotification().GetSafetyAlertId()
	var a *notificationv1.SafetyAlert
	eventually(t, "escalation to admins", func() bool {
		list, err := f.admin.ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		a = list.GetAlerts()[0]
		return a.GetEscalationLevel() == notificationv1.EscalationLevel_ESCALATION_LEVEL_ADMINS
	})
	if a.GetAlertId() != alertID || len(a.GetSteps()) != 3 || a.GetEscalateAt() != nil {
		t.Fatalf("alert = %v", a)
	}
	// Each step went to its level, on time: no step before escalate-after passed.
	ns := map[string]*notificationv1.Notification{}
	for _, st := range a.GetSteps() {
		ns[st.GetNotificationId()] = f.waitStatus(t, st.GetNotificationId(), stDelivered)
	}
	list, err := f.admin.ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a = list.GetAlerts()[0]
	for i, st := range a.GetSteps() {
		n := ns[st.GetNotificationId()]
		if i > 0 && st.GetAt().AsTime().Sub(a.GetSteps()[i-1].GetAt().AsTime()) < 2*time.Second {
			t.Errorf("step %d came %v after the previous one", i, st.GetAt().AsTime().Sub(a.GetSteps()[i-1].GetAt().AsTime()))
		}
		if st.GetRecipientCount() != 1 || n.GetDeviceCount() != 1 {
			t.Errorf("step %d = %v, notification %v", i, st, n)
		}
	}
	for _, tok := range []string{"tok-site", "tok-other", "tok-admin"} {
		if len(f.vendor.Messages(fakevendor.Push)) < 3 {
			t.Fatal("fewer than 3 pushes")
		}
		found := false
		for _, m := range f.vendor.Messages(fakevendor.Push) {
			found = found || m.Token == tok
		}
		if !found {
			t.Errorf("%s got nothing", tok)
		}
	}
	if n := auditCount(t, f, "SAFETY_ALERT_ESCALATED", alertID); n != 2 {
		t.Fatalf("escalation audit events = %d", n)
	}
}

func TestAcknowledgedAlertStopsEscalatingAndInvestigatorsAreScoped(t *testing.T) {
	f := setup(t, notification.WithEscalateAfter(2*time.Second))
	ctx := context.Background()
	res, err := f.epro.SendNotification(ctx, f.alert("epro:alert:acknowledged"))
	if err != nil {
		t.Fatal(err)
	}
	alertID := res.GetNotification().GetSafetyAlertId()
	outsider := auth.Caller{Subject: uuid.NewString(), Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{f.other}, Trials: []string{f.trial.trialID}}
	if _, err := f.client(t, outsider).AcknowledgeSafetyAlert(ctx, &notificationv1.AcknowledgeSafetyAlertRequest{AlertId: alertID}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outsider ack = %v", err)
	}
	if _, err := f.client(t, outsider).ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{SiteId: f.site}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outsider list = %v", err)
	}
	if list, err := f.client(t, outsider).ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{}); err != nil || len(list.GetAlerts()) != 0 {
		t.Fatalf("outsider sees %v, %v", list, err)
	}
	inv := auth.Caller{Subject: uuid.NewString(), Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{f.site}, Trials: []string{f.trial.trialID}}
	ack, err := f.client(t, inv).AcknowledgeSafetyAlert(ctx, &notificationv1.AcknowledgeSafetyAlertRequest{AlertId: alertID})
	if err != nil || ack.GetAlert().GetStatus() != notificationv1.SafetyAlertStatus_SAFETY_ALERT_STATUS_ACKNOWLEDGED || ack.GetAlert().GetAcknowledgedBy() != inv.Subject {
		t.Fatalf("ack = %v, %v", ack, err)
	}
	again, err := f.admin.AcknowledgeSafetyAlert(ctx, &notificationv1.AcknowledgeSafetyAlertRequest{AlertId: alertID})
	if err != nil || again.GetAlert().GetAcknowledgedBy() != inv.Subject {
		t.Fatalf("ack again = %v, %v", again, err)
	}
	// The escalation job comes due and finds the alert acknowledged.
	eventually(t, "the escalation job to run", func() bool {
		var n int
		if err := f.env.DB(t).SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'notification.escalate' AND state = 'completed'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	list, err := f.client(t, inv).ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{})
	if err != nil || len(list.GetAlerts()) != 1 || len(list.GetAlerts()[0].GetSteps()) != 1 ||
		list.GetAlerts()[0].GetEscalationLevel() != notificationv1.EscalationLevel_ESCALATION_LEVEL_SITE_INVESTIGATORS {
		t.Fatalf("after ack = %v, %v", list, err)
	}
	if n := auditCount(t, f, "SAFETY_ALERT_ACKNOWLEDGED", alertID); n != 1 {
		t.Fatalf("ack audit events = %d", n)
	}
}

func TestListSafetyAlertsOpenOldestFirstThenAcknowledged(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	var ids []string
	for _, key := range []string{"epro:alert:order-first", "epro:alert:order-second", "epro:alert:order-third"} {
		res, err := f.epro.SendNotification(ctx, f.alert(key))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.GetNotification().GetSafetyAlertId())
	}
	if _, err := f.admin.AcknowledgeSafetyAlert(ctx, &notificationv1.AcknowledgeSafetyAlertRequest{AlertId: ids[1]}); err != nil {
		t.Fatal(err)
	}
	var got []string
	req := &notificationv1.ListSafetyAlertsRequest{PageSize: 1}
	for range 5 {
		res, err := f.admin.ListSafetyAlerts(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.GetAlerts() {
			got = append(got, a.GetAlertId())
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if want := []string{ids[0], ids[2], ids[1]}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	open, err := f.admin.ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{Statuses: []notificationv1.SafetyAlertStatus{notificationv1.SafetyAlertStatus_SAFETY_ALERT_STATUS_OPEN}})
	if err != nil || len(open.GetAlerts()) != 2 {
		t.Fatalf("open = %v, %v", open, err)
	}
}
