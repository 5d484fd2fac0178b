package notification_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// The dev stack runs the service on SQLite: sending, retrying and re-queueing
// work there too.
func TestDeliveryOnSQLite(t *testing.T) {
	vendor, url := fakevendor.Start(t)
	env := platformtest.Start(t, notification.Platform(append(testOptions(url), notification.WithMaxAttempts(2), notification.WithReconcileEvery(100*time.Millisecond))...), platformtest.WithSQLite())
	ctx := context.Background()
	admin := notificationv1connect.NewNotificationServiceClient(env.Client(t, platformtest.Admin()))
	p := patientCaller(uuid.NewString())
	if _, err := notificationv1connect.NewNotificationServiceClient(env.Client(t, p)).RegisterDevice(ctx, &notificationv1.RegisterDeviceRequest{
		PushToken: "tok-sqlite", Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_WEB, AppVersion: "1.0", Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	if err := vendor.SetFault(fakevendor.Fault{Mode: fakevendor.ServerError}); err != nil {
		t.Fatal(err)
	}
	res, err := admin.SendNotification(ctx, reminder("reminder:sqlite-dead-then-requeued", p.Subject))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetNotification().GetNotificationId()
	status := func() *notificationv1.Notification {
		g, err := admin.GetNotification(ctx, &notificationv1.GetNotificationRequest{NotificationId: id})
		if err != nil {
			t.Fatal(err)
		}
		return g.GetNotification()
	}
	eventually(t, "DEAD on SQLite", func() bool { return status().GetStatus() == stDead })
	if err := vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RequeueNotification(ctx, &notificationv1.RequeueNotificationRequest{NotificationId: id, Reason: "vendor healthy again"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DELIVERED on SQLite", func() bool { return status().GetStatus() == stDelivered })
	if n := vendor.Messages(fakevendor.Push); len(n) != 1 {
		t.Fatalf("pushes = %v", n)
	}
	// The reconciler's query runs on SQLite too.
	var ok, failed int
	eventually(t, "a reconciler run", func() bool {
		if err := env.DB(t).SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'notification.reconcile' AND state = 'completed'`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok > 0
	})
	if err := env.DB(t).SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'notification.reconcile' AND errors IS NOT NULL`).Scan(&failed); err != nil || failed != 0 {
		t.Fatalf("reconciler failed %d times (%v)", failed, err)
	}
}
