package notification_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

func TestSendDeliversToThePatientsDevicesInTheirLocale(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	subject := uuid.NewString()
	f.device(t, patientCaller(subject), "tok-phone-"+subject, "de-CH")
	f.device(t, patientCaller(subject), "tok-tablet-"+subject, "en")
	res, err := f.epro.SendNotification(ctx, reminder("reminder:visit-1:window-open", subject))
	if err != nil {
		t.Fatal(err)
	}
	n := res.GetNotification()
	if n.GetStatus() != notificationv1.NotificationStatus_NOTIFICATION_STATUS_QUEUED || n.GetRequestedBy() != "epro" || n.GetAboutSubjectUuid() != subject {
		t.Fatalf("accepted = %v", n)
	}
	got := f.waitStatus(t, n.GetNotificationId(), notificationv1.NotificationStatus_NOTIFICATION_STATUS_DELIVERED)
	if got.GetDeviceCount() != 2 || got.GetDeliveredDeviceCount() != 2 || got.GetAttemptCount() != 1 ||
		got.GetFirstSentAt() == nil || got.GetDeliveredAt() == nil || got.GetScheduledFor() == nil {
		t.Fatalf("delivered = %v", got)
	}
	msgs := f.vendor.Messages(fakevendor.Push)
	bodies := map[string]string{}
	for _, m := range msgs {
		bodies[m.Token] = m.Params["body"]
		if m.Params["notification_id"] != n.GetNotificationId() || strings.Contains(m.Params["body"], subject) {
			t.Errorf("push %v", m)
		}
	}
	if !strings.HasPrefix(bodies["tok-phone-"+subject], "In der App") || !strings.HasPrefix(bodies["tok-tablet-"+subject], "A questionnaire") {
		t.Errorf("bodies = %v", bodies)
	}

	// The same key and body is the same notification, in its current state.
	again, err := f.epro.SendNotification(ctx, reminder("reminder:visit-1:window-open", subject))
	if err != nil || again.GetNotification().GetNotificationId() != n.GetNotificationId() ||
		again.GetNotification().GetStatus() != notificationv1.NotificationStatus_NOTIFICATION_STATUS_DELIVERED {
		t.Fatalf("replay = %v, %v", again, err)
	}
	if len(f.vendor.Messages(fakevendor.Push)) != 2 {
		t.Fatal("a replay sent again")
	}
	// Another body under the key is ALREADY_EXISTS.
	other := reminder("reminder:visit-1:window-open", uuid.NewString())
	if _, err := f.epro.SendNotification(ctx, other); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("other body = %v, want already_exists", err)
	}
}

func TestSendRefusesUndeclaredOrMistypedParameters(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mutate func(*notificationv1.SendNotificationRequest)
		field  string
	}{
		{"unknown template", func(r *notificationv1.SendNotificationRequest) { r.TemplateCode = "free_text" }, "template_code"},
		{"undeclared", func(r *notificationv1.SendNotificationRequest) {
			r.TemplateParameters = []*notificationv1.TemplateParameter{{Name: "score", Value: &notificationv1.TemplateParameter_Count{Count: 21}}}
		}, "template_parameters[score]"},
		{"wrong kind", func(r *notificationv1.SendNotificationRequest) {
			r.TemplateCode = "visit_window_closing"
			r.TemplateParameters = []*notificationv1.TemplateParameter{{Name: "closes_in", Value: &notificationv1.TemplateParameter_Days{Days: 1}}}
		}, "template_parameters[closes_in]"},
		{"missing required", func(r *notificationv1.SendNotificationRequest) { r.TemplateCode = "visit_window_closing" }, "template_parameters[closes_in]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := reminder("reminder:"+uuid.NewString(), uuid.NewString())
			tc.mutate(req)
			_, err := f.epro.SendNotification(ctx, req)
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want invalid_argument naming %s", err, tc.field)
			}
		})
	}
}

func TestSendWithoutDeviceFailsAndAPastExpiryIsStoredExpired(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	res, err := f.epro.SendNotification(ctx, reminder("reminder:no-device-key", uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	got := f.waitStatus(t, res.GetNotification().GetNotificationId(), notificationv1.NotificationStatus_NOTIFICATION_STATUS_FAILED)
	if got.GetFailureReason() != notificationv1.FailureReason_FAILURE_REASON_NO_DEVICE {
		t.Fatalf("failed = %v", got)
	}
}
