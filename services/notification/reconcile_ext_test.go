package notification_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

// A delivery job River discarded with nobody recording the end (the rescuer
// giving up on a job whose process died on its last attempt) makes its
// notification a dead letter, which an administrator re-queues.
func TestDiscardedJobMakesTheNotificationDead(t *testing.T) {
	f := setupBare(t, slog.New(slog.DiscardHandler))
	d := f.db(t)
	url, stop := f.serve(t)
	subject := uuid.NewString()
	if _, err := deviceOn(t, f, url, subject); err != nil {
		t.Fatal(err)
	}
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
		t.Fatal(err)
	}
	res, err := notificationv1Client(t, f, url).SendNotification(context.Background(), reminder("reminder:discarded-job", subject))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetNotification().GetNotificationId()
	stop()
	// What a rescuer that gave up leaves behind.
	if _, err := d.SQL().Exec(`UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'notification_id' = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SQL().Exec(`UPDATE notifications SET status = 'SENDING' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	f.run(t, notification.WithReconcileEvery(200*time.Millisecond))
	dead := f.waitStatus(t, id, stDead)
	if dead.GetLastError() != "delivery job discarded: its last attempt's worker was lost" {
		t.Fatalf("dead = %v", dead)
	}
	if _, err := f.admin.RequeueNotification(context.Background(), &notificationv1.RequeueNotificationRequest{NotificationId: id, Reason: "worker crash investigated"}); err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, id, stDelivered)
	if n := f.deliveries()[id]; n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}
