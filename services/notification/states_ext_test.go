package notification_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

var (
	stQueued    = notificationv1.NotificationStatus_NOTIFICATION_STATUS_QUEUED
	stDelivered = notificationv1.NotificationStatus_NOTIFICATION_STATUS_DELIVERED
	stFailed    = notificationv1.NotificationStatus_NOTIFICATION_STATUS_FAILED
	stRetrying  = notificationv1.NotificationStatus_NOTIFICATION_STATUS_RETRYING
	stDead      = notificationv1.NotificationStatus_NOTIFICATION_STATUS_DEAD
	stExpired   = notificationv1.NotificationStatus_NOTIFICATION_STATUS_EXPIRED
	stCancelled = notificationv1.NotificationStatus_NOTIFICATION_STATUS_CANCELLED
)

func TestTransientErrorsRetryThenDeliver(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	subject := uuid.NewString()
	f.device(t, patientCaller(subject), "tok-"+subject, "en")
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.ServerError, Status: 503}); err != nil {
		t.Fatal(err)
	}
	res, err := f.epro.SendNotification(ctx, reminder("reminder:retry-then-deliver", subject))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetNotification().GetNotificationId()
	retrying := f.waitStatus(t, id, stRetrying)
	if retrying.GetNextAttemptAt() == nil || !strings.HasPrefix(retrying.GetLastError(), "push vendor: HTTP 503") {
		t.Fatalf("retrying = %v", retrying)
	}
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	got := f.waitStatus(t, id, stDelivered)
	if got.GetAttemptCount() < 2 || got.GetLastError() != "" || got.GetNextAttemptAt() != nil {
		t.Fatalf("delivered = %v", got)
	}
}

func TestRetriesExhaustedIsDeadWithASanitisedErrorThenRequeued(t *testing.T) {
	f := setup(t, notification.WithMaxAttempts(3))
	ctx := context.Background()
	subject := uuid.NewString()
	token := "secret-token-" + subject
	f.device(t, patientCaller(subject), token, "en")
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.ServerError, Status: 502}); err != nil {
		t.Fatal(err)
	}
	res, err := f.epro.SendNotification(ctx, reminder("reminder:dead-letter", subject))
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetNotification().GetNotificationId()
	dead := f.waitStatus(t, id, stDead)
	host := strings.TrimPrefix(f.vendURL, "http://")
	if dead.GetAttemptCount() != 3 || dead.GetFailureReason() != notificationv1.FailureReason_FAILURE_REASON_RETRIES_EXHAUSTED ||
		dead.GetLastError() != "push vendor: HTTP 502" || strings.Contains(dead.GetLastError(), host) || strings.Contains(dead.GetLastError(), token) {
		t.Fatalf("dead = %v", dead)
	}
	// Visible to admins as a dead letter, re-queued by them, then delivered.
	list, err := f.admin.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{Statuses: []notificationv1.NotificationStatus{stDead}})
	if err != nil || len(list.GetNotifications()) != 1 || list.GetNotifications()[0].GetNotificationId() != id {
		t.Fatalf("dead letters = %v, %v", list, err)
	}
	if _, err := f.admin.RequeueNotification(ctx, &notificationv1.RequeueNotificationRequest{NotificationId: uuid.NewString(), Reason: "vendor fixed"}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("requeue unknown = %v", err)
	}
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	rq, err := f.admin.RequeueNotification(ctx, &notificationv1.RequeueNotificationRequest{NotificationId: id, Reason: "vendor outage over"})
	if err != nil || rq.GetNotification().GetRequeueCount() != 1 {
		t.Fatalf("requeue = %v, %v", rq, err)
	}
	f.waitStatus(t, id, stDelivered)
	_, err = f.admin.RequeueNotification(ctx, &notificationv1.RequeueNotificationRequest{NotificationId: id, Reason: "once more please"})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "DELIVERED") {
		t.Fatalf("requeue delivered = %v", err)
	}
	if n := auditCount(t, f, "NOTIFICATION_REQUEUED", id); n != 1 {
		t.Fatalf("requeue audit events = %d", n)
	}
}

func TestTransportErrorNamesNoURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	f := setup(t, notification.WithPushURL(closed), notification.WithMaxAttempts(2))
	subject := uuid.NewString()
	f.device(t, patientCaller(subject), "tok-"+subject, "en")
	res, err := f.epro.SendNotification(context.Background(), reminder("reminder:transport-error", subject))
	if err != nil {
		t.Fatal(err)
	}
	dead := f.waitStatus(t, res.GetNotification().GetNotificationId(), stDead)
	if dead.GetLastError() != "push vendor: transport error" || strings.Contains(dead.GetLastError(), ln.Addr().String()) {
		t.Fatalf("last_error = %q", dead.GetLastError())
	}
}

// goneVendor answers 410 for tokens starting "gone-" and 400 naming "payload"
// for template "too_big", like APNs and FCM do for uninstalled apps and bad payloads.
func goneVendor(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Token string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		if strings.HasPrefix(in.Token, "gone-") {
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"error":"Unregistered token ` + in.Token + `","code":"Unregistered"}`))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":"credentials refused for https://push.example/v1","code":"InvalidProviderToken"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestPermanentVendorErrorsFail(t *testing.T) {
	url := goneVendor(t)
	f := setup(t, notification.WithPushURL(url))
	ctx := context.Background()
	gone := uuid.NewString()
	dev := f.device(t, patientCaller(gone), "gone-"+gone, "en")
	res, err := f.epro.SendNotification(ctx, reminder("reminder:token-invalid", gone))
	if err != nil {
		t.Fatal(err)
	}
	got := f.waitStatus(t, res.GetNotification().GetNotificationId(), stFailed)
	if got.GetFailureReason() != notificationv1.FailureReason_FAILURE_REASON_TOKEN_INVALID ||
		got.GetLastError() != "push vendor: HTTP 410 (Unregistered)" {
		t.Fatalf("token invalid = %v", got)
	}
	// The invalid token's registration is gone.
	mine := f.client(t, patientCaller(gone))
	list, err := mine.ListMyDevices(ctx, &notificationv1.ListMyDevicesRequest{})
	if err != nil || len(list.GetDevices()) != 0 {
		t.Fatalf("devices after 410 = %v, %v (device %s)", list, err, dev)
	}

	refused := uuid.NewString()
	f.device(t, patientCaller(refused), "ok-"+refused, "en")
	res, err = f.epro.SendNotification(ctx, reminder("reminder:vendor-rejected", refused))
	if err != nil {
		t.Fatal(err)
	}
	got = f.waitStatus(t, res.GetNotification().GetNotificationId(), stFailed)
	if got.GetFailureReason() != notificationv1.FailureReason_FAILURE_REASON_VENDOR_REJECTED ||
		got.GetLastError() != "push vendor: HTTP 403 (InvalidProviderToken)" || strings.Contains(got.GetLastError(), "https://") {
		t.Fatalf("rejected = %v", got)
	}
}

func TestCancelAndExpiry(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	subject := uuid.NewString()
	f.device(t, patientCaller(subject), "tok-"+subject, "en")
	later := reminder("reminder:visit-9:window-closing", subject)
	later.NotBefore = timestamppb.New(time.Now().Add(time.Hour))
	res, err := f.epro.SendNotification(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	n := res.GetNotification()
	if n.GetStatus() != stQueued || !n.GetScheduledFor().AsTime().Equal(later.GetNotBefore().AsTime().Truncate(time.Microsecond)) {
		t.Fatalf("scheduled = %v", n)
	}
	c, err := f.epro.CancelNotification(ctx, &notificationv1.CancelNotificationRequest{
		Target: &notificationv1.CancelNotificationRequest_IdempotencyKey{IdempotencyKey: "reminder:visit-9:window-closing"}, Reason: "questionnaire submitted"})
	if err != nil || c.GetNotification().GetStatus() != stCancelled || c.GetNotification().GetCancelReason() != "questionnaire submitted" {
		t.Fatalf("cancel = %v, %v", c, err)
	}
	// Again: unchanged.
	c2, err := f.epro.CancelNotification(ctx, &notificationv1.CancelNotificationRequest{
		Target: &notificationv1.CancelNotificationRequest_NotificationId{NotificationId: n.GetNotificationId()}, Reason: "another reason"})
	if err != nil || c2.GetNotification().GetCancelReason() != "questionnaire submitted" {
		t.Fatalf("cancel again = %v, %v", c2, err)
	}
	// A delivered one cannot be cancelled.
	now, err := f.epro.SendNotification(ctx, reminder("reminder:visit-9:window-open", subject))
	if err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, now.GetNotification().GetNotificationId(), stDelivered)
	_, err = f.epro.CancelNotification(ctx, &notificationv1.CancelNotificationRequest{
		Target: &notificationv1.CancelNotificationRequest_NotificationId{NotificationId: now.GetNotification().GetNotificationId()}, Reason: "too late now"})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("cancel delivered = %v", err)
	}
	// A send arriving after its expiry is accepted EXPIRED and never sent.
	late := reminder("reminder:visit-8:window-open", subject)
	late.ExpiresAt = timestamppb.New(time.Now().Add(-time.Minute))
	res, err = f.epro.SendNotification(ctx, late)
	if err != nil || res.GetNotification().GetStatus() != stExpired {
		t.Fatalf("late = %v, %v", res, err)
	}
	if n := auditCount(t, f, "NOTIFICATION_CANCELLED", n.GetNotificationId()); n != 1 {
		t.Fatalf("cancel audit events = %d", n)
	}
}

// auditCount counts audit events of action on record id in the service's trail.
func auditCount(t *testing.T, f *fixture, action, id string) int {
	t.Helper()
	var n int
	if err := f.env.DB(t).SQL().QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = $1 AND record_id = $2`, action, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestListNotificationsPagesNewestFirst(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	subject := uuid.NewString()
	var sent []string
	for i := range 5 {
		res, err := f.epro.SendNotification(ctx, reminder(fmt.Sprintf("reminder:page-%02d:window-open", i), subject))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, res.GetNotification().GetNotificationId())
	}
	other, err := f.epro.SendNotification(ctx, reminder("reminder:page-other:window-open", uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	req := &notificationv1.ListNotificationsRequest{SubjectUuid: subject, PageSize: 2}
	for pages := 0; ; pages++ {
		res, err := f.admin.ListNotifications(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range res.GetNotifications() {
			got = append(got, n.GetNotificationId())
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" || pages > 5 {
			break
		}
	}
	slices.Reverse(sent)
	if !slices.Equal(got, sent) || slices.Contains(got, other.GetNotification().GetNotificationId()) {
		t.Fatalf("pages = %v, want %v", got, sent)
	}
	if _, err := f.admin.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{PageToken: "bm9wZQ"}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad token = %v", err)
	}
}

func TestClosedAccountGetsNothing(t *testing.T) {
	f := setup(t)
	subject := uuid.NewString()
	f.device(t, patientCaller(subject), "tok-closed-"+subject, "en")
	f.subjects.close(subject)
	res, err := f.epro.SendNotification(context.Background(), reminder("reminder:closed-account", subject))
	if err != nil {
		t.Fatal(err)
	}
	got := f.waitStatus(t, res.GetNotification().GetNotificationId(), stFailed)
	if got.GetFailureReason() != notificationv1.FailureReason_FAILURE_REASON_RECIPIENT_INACTIVE || got.GetLastError() != "recipient inactive: CLOSED" {
		t.Fatalf("closed = %v", got)
	}
	if len(f.vendor.Messages(fakevendor.Push)) != 0 {
		t.Fatal("a push went to a closed account")
	}
}
