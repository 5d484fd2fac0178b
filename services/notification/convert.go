package notification

// Conversions between the contract and storage. Enums are stored as their
// contract names without the type prefix ("QUEUED", "ALERT").

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/internal/templates"
)

// Stored statuses.
const (
	stQueued    = "QUEUED"
	stSending   = "SENDING"
	stDelivered = "DELIVERED"
	stFailed    = "FAILED"
	stExpired   = "EXPIRED"
	stCancelled = "CANCELLED"
	stRetrying  = "RETRYING"
	stDead      = "DEAD"
)

// Group recipients of escalation steps (recipient_role).
const (
	groupTrialStaff = "TRIAL_STAFF" // the staff of the trial's other sites
	groupAdmins     = "ROLE_ADMIN"  // devices registered by administrators
)

func enumName(full, prefix string) string { return strings.TrimPrefix(full, prefix) }

func statusName(s notificationv1.NotificationStatus) string {
	return enumName(s.String(), "NOTIFICATION_STATUS_")
}

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// paramValues reads the contract's typed parameters.
func paramValues(ps []*notificationv1.TemplateParameter) []templates.Value {
	out := make([]templates.Value, 0, len(ps))
	for _, p := range ps {
		v := templates.Value{Name: p.GetName()}
		switch x := p.GetValue().(type) {
		case *notificationv1.TemplateParameter_Count:
			v.Kind, v.Value = templates.Count, x.Count
		case *notificationv1.TemplateParameter_Days:
			v.Kind, v.Value = templates.Days, x.Days
		case *notificationv1.TemplateParameter_Hours:
			v.Kind, v.Value = templates.Hours, x.Hours
		case *notificationv1.TemplateParameter_Minutes:
			v.Kind, v.Value = templates.Minutes, x.Minutes
		}
		out = append(out, v)
	}
	return out
}

func paramProtos(vs []templates.Value) []*notificationv1.TemplateParameter {
	out := make([]*notificationv1.TemplateParameter, 0, len(vs))
	for _, v := range vs {
		p := &notificationv1.TemplateParameter{Name: v.Name}
		switch v.Kind {
		case templates.Count:
			p.Value = &notificationv1.TemplateParameter_Count{Count: v.Value}
		case templates.Days:
			p.Value = &notificationv1.TemplateParameter_Days{Days: v.Value}
		case templates.Hours:
			p.Value = &notificationv1.TemplateParameter_Hours{Hours: v.Value}
		case templates.Minutes:
			p.Value = &notificationv1.TemplateParameter_Minutes{Minutes: v.Value}
		}
		out = append(out, p)
	}
	return out
}

func storedParams(n *ent.Notification) []templates.Value {
	var vs []templates.Value
	_ = json.Unmarshal([]byte(n.Parameters), &vs)
	return vs
}

func notificationProto(n *ent.Notification) *notificationv1.Notification {
	pb := &notificationv1.Notification{
		NotificationId:       n.ID,
		Kind:                 notificationv1.NotificationKind(notificationv1.NotificationKind_value["NOTIFICATION_KIND_"+n.Kind]),
		TemplateCode:         n.TemplateCode,
		TemplateParameters:   paramProtos(storedParams(n)),
		Priority:             notificationv1.NotificationPriority(notificationv1.NotificationPriority_value["NOTIFICATION_PRIORITY_"+n.Priority]),
		Status:               notificationv1.NotificationStatus(notificationv1.NotificationStatus_value["NOTIFICATION_STATUS_"+n.Status]),
		AttemptCount:         int32(n.AttemptCount),
		LastError:            n.LastError,
		DeviceCount:          int32(n.DeviceCount),
		DeliveredDeviceCount: int32(n.DeliveredDeviceCount),
		NotBefore:            ts(n.NotBefore),
		ExpiresAt:            ts(n.ExpiresAt),
		CreatedAt:            timestamppb.New(n.CreatedAt),
		UpdatedAt:            timestamppb.New(n.UpdatedAt),
		DeliveredAt:          ts(n.DeliveredAt),
		TrialId:              n.TrialID,
		SubjectVisitId:       n.SubjectVisitID,
		AboutSubjectUuid:     n.AboutSubjectUUID,
		SourceReference:      n.SourceReference,
		RequestedBy:          n.RequestedBy,
		CancelReason:         n.CancelReason,
		ScheduledFor:         timestamppb.New(n.ScheduledFor),
		FirstSentAt:          ts(n.FirstSentAt),
		OpenedAt:             ts(n.OpenedAt),
		SafetyAlertId:        n.SafetyAlertID,
		RequeueCount:         int32(n.RequeueCount),
	}
	if n.Status == stFailed {
		pb.FailureReason = notificationv1.FailureReason(notificationv1.FailureReason_value["FAILURE_REASON_"+n.FailureReason])
	}
	if n.Status == stDead {
		pb.FailureReason = notificationv1.FailureReason_FAILURE_REASON_RETRIES_EXHAUSTED
	}
	if n.Status == stQueued || n.Status == stRetrying {
		pb.NextAttemptAt = ts(n.NextAttemptAt)
	}
	switch {
	case n.RecipientSubject != "":
		pb.Recipient = &notificationv1.Recipient{Target: &notificationv1.Recipient_SubjectUuid{SubjectUuid: n.RecipientSubject}}
	case n.RecipientStaff != "":
		pb.Recipient = &notificationv1.Recipient{Target: &notificationv1.Recipient_Staff{Staff: &notificationv1.StaffRecipient{
			Target: &notificationv1.StaffRecipient_StaffId{StaffId: n.RecipientStaff}}}}
	case n.RecipientSite != "" && n.RecipientRole == "":
		pb.Recipient = &notificationv1.Recipient{Target: &notificationv1.Recipient_Staff{Staff: &notificationv1.StaffRecipient{
			Target: &notificationv1.StaffRecipient_SiteId{SiteId: n.RecipientSite}}}}
	}
	return pb
}

func deviceProto(d *ent.Device) *notificationv1.Device {
	return &notificationv1.Device{
		DeviceId:     d.ID,
		Platform:     notificationv1.DevicePlatform(notificationv1.DevicePlatform_value["DEVICE_PLATFORM_"+d.Platform]),
		AppVersion:   d.AppVersion,
		Locale:       d.Locale,
		RegisteredAt: timestamppb.New(d.RegisteredAt),
		LastSeenAt:   timestamppb.New(d.LastSeenAt),
	}
}

// invalid is INVALID_ARGUMENT naming the failing field.
func invalid(field, msg string) error {
	return connect.NewError(connect.CodeInvalidArgument, field+": "+msg)
}

func errorf(code connect.Code, format string, args ...any) error {
	return connect.Errorf(code, format, args...)
}

// offsetToken pages simple listings by position.
func offsetToken(n int) string {
	if n <= 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(n)))
}

func parseOffset(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "o:") {
		return 0, invalid("page_token", "not a token of this listing")
	}
	n, err := strconv.Atoi(string(b[2:]))
	if err != nil || n < 0 {
		return 0, invalid("page_token", "not a token of this listing")
	}
	return n, nil
}

func pageSize(n int32) int {
	if n <= 0 {
		return 50
	}
	return int(n)
}
