package notification

import (
	"context"
	"fmt"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// SubjectKey is the Seeder value the patient seed leaves: the demo patient's subject_uuid.
const SubjectKey = "demo.subject_uuid"

// seed registers a demo push device for the demo patient (when the patient seed
// left one), so reminders of the demo enrollment reach the stack's fake vendor.
// Registering the same token again only refreshes it.
func seed(ctx context.Context, s *platform.Seeder) error {
	subject := s.Get(SubjectKey)
	if subject == "" {
		return nil
	}
	c, err := s.Client(auth.Caller{Subject: subject, Role: authzv1.Role_ROLE_PATIENT})
	if err != nil {
		return err
	}
	res, err := notificationv1connect.NewNotificationServiceClient(c).RegisterDevice(ctx, &notificationv1.RegisterDeviceRequest{
		PushToken: "demo-push-token-" + subject, Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_WEB,
		AppVersion: "1.0.0", Locale: "en",
	})
	if err != nil {
		return fmt.Errorf("seed demo device: %w", err)
	}
	_, err = fmt.Fprintf(s.Out, "  push:       demo device %s for the demo patient; inbox: /fakevendor/inbox?channel=push\n", res.GetDevice().GetDeviceId())
	return err
}
