package notification_test

import (
	"context"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

func TestDevicesTokenMovesAndUnregister(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	alice, bob := patientCaller(uuid.NewString()), patientCaller(uuid.NewString())
	first := f.device(t, alice, "shared-phone", "en")
	if again := f.device(t, alice, "shared-phone", "fr"); again != first {
		t.Fatalf("refresh gave a new id %s", again)
	}
	mine, err := f.client(t, alice).ListMyDevices(ctx, &notificationv1.ListMyDevicesRequest{})
	if err != nil || len(mine.GetDevices()) != 1 || mine.GetDevices()[0].GetLocale() != "fr" {
		t.Fatalf("alice's devices = %v, %v", mine, err)
	}
	// The phone is handed to Bob: the token moves under a new id.
	moved := f.device(t, bob, "shared-phone", "en")
	if moved == first {
		t.Fatal("the token moved under the same id")
	}
	if mine, _ := f.client(t, alice).ListMyDevices(ctx, &notificationv1.ListMyDevicesRequest{}); len(mine.GetDevices()) != 0 {
		t.Fatalf("alice still has %v", mine)
	}
	res, err := f.epro.SendNotification(ctx, reminder("reminder:after-the-move", alice.Subject))
	if err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, res.GetNotification().GetNotificationId(), stFailed)
	// Alice cannot remove Bob's device; Bob can, twice.
	if _, err := f.client(t, alice).UnregisterDevice(ctx, &notificationv1.UnregisterDeviceRequest{DeviceId: moved}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unregister another's = %v", err)
	}
	u1, err := f.client(t, bob).UnregisterDevice(ctx, &notificationv1.UnregisterDeviceRequest{DeviceId: moved})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := f.client(t, bob).UnregisterDevice(ctx, &notificationv1.UnregisterDeviceRequest{DeviceId: moved})
	if err != nil || !u2.GetUnregisteredAt().AsTime().Equal(u1.GetUnregisteredAt().AsTime()) {
		t.Fatalf("unregister again = %v, %v", u2, err)
	}
	var tokens int
	if err := f.env.DB(t).SQL().QueryRow(`SELECT COUNT(*) FROM devices WHERE push_token IS NOT NULL`).Scan(&tokens); err != nil || tokens != 0 {
		t.Fatalf("tokens kept: %d, %v", tokens, err)
	}
}

func TestOpenedIsReportedByARecipientOnly(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	p := patientCaller(uuid.NewString())
	f.device(t, p, "tok-open", "en")
	res, err := f.epro.SendNotification(ctx, reminder("reminder:opened-report", p.Subject))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetNotification().GetNotificationId()
	f.waitStatus(t, id, stDelivered)
	if _, err := f.client(t, patientCaller(uuid.NewString())).ReportNotificationOpened(ctx, &notificationv1.ReportNotificationOpenedRequest{NotificationId: id}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("stranger = %v", err)
	}
	o1, err := f.client(t, p).ReportNotificationOpened(ctx, &notificationv1.ReportNotificationOpenedRequest{NotificationId: id})
	if err != nil {
		t.Fatal(err)
	}
	o2, err := f.client(t, p).ReportNotificationOpened(ctx, &notificationv1.ReportNotificationOpenedRequest{NotificationId: id})
	if err != nil || !o2.GetOpenedAt().AsTime().Equal(o1.GetOpenedAt().AsTime()) {
		t.Fatalf("second report = %v, %v", o2, err)
	}
	got := f.waitStatus(t, id, stDelivered)
	if got.GetOpenedAt() == nil || len(f.vendor.Messages(fakevendor.Push)) != 1 {
		t.Fatalf("log = %v", got)
	}
}
