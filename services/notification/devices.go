package notification

import (
	"context"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"connectrpc.com/connect/v2"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/device"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// RegisterDevice implements NotificationService.RegisterDevice. The token is
// the natural key: the caller's own token is refreshed; another account's moves
// to the caller under a new id (the old registration loses it).
func (s *Service) RegisterDevice(ctx context.Context, req *notificationv1.RegisterDeviceRequest) (*notificationv1.RegisterDeviceResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	platform := enumName(req.GetPlatform().String(), "DEVICE_PLATFORM_")
	var out *ent.Device
	created := false
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		c := ent.NewClient(ent.Driver(tx.Driver()))
		now := s.now()
		d, err := c.Device.Query().Where(device.PushToken(req.GetPushToken())).Only(ctx)
		switch {
		case err == nil && d.AccountID == caller.Subject && d.Role == caller.Role.String():
			out, err = d.Update().SetPlatform(platform).SetAppVersion(req.GetAppVersion()).SetLocale(req.GetLocale()).
				SetLastSeenAt(now).Save(ctx)
			return err
		case err == nil:
			// Another account's phone now: it loses the token, the caller gets a new id.
			if err := d.Update().ClearPushToken().SetUnregisteredAt(now).Exec(ctx); err != nil {
				return err
			}
		case !ent.IsNotFound(err):
			return err
		}
		created = true
		out, err = c.Device.Create().SetID(uuid.NewString()).SetAccountID(caller.Subject).SetRole(caller.Role.String()).
			SetPushToken(req.GetPushToken()).SetPlatform(platform).SetAppVersion(req.GetAppVersion()).
			SetLocale(req.GetLocale()).SetRegisteredAt(now).SetLastSeenAt(now).Save(ctx)
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "device")
	}
	return &notificationv1.RegisterDeviceResponse{Device: deviceProto(out), Created: created}, nil
}

// UnregisterDevice implements NotificationService.UnregisterDevice: the token
// is erased; a repeat answers the first unregistration's time.
func (s *Service) UnregisterDevice(ctx context.Context, req *notificationv1.UnregisterDeviceRequest) (*notificationv1.UnregisterDeviceResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	d, err := s.ent.Device.Get(ctx, req.GetDeviceId())
	if ent.IsNotFound(err) || err == nil && d.AccountID != caller.Subject {
		return nil, errorf(connect.CodeNotFound, "device %s not found", req.GetDeviceId())
	}
	if err != nil {
		return nil, db.ConnectError(err, "device")
	}
	if d.UnregisteredAt == nil {
		now := s.now()
		n, err := s.ent.Device.Update().Where(device.ID(d.ID), device.UnregisteredAtIsNil()).
			ClearPushToken().SetUnregisteredAt(now).Save(ctx)
		if err != nil {
			return nil, db.ConnectError(err, "device")
		}
		if n == 0 {
			if d, err = s.ent.Device.Get(ctx, d.ID); err != nil {
				return nil, db.ConnectError(err, "device")
			}
		} else {
			d.UnregisteredAt = &now
		}
	}
	return &notificationv1.UnregisterDeviceResponse{DeviceId: d.ID, UnregisteredAt: timestamppb.New(*d.UnregisteredAt)}, nil
}

// ListMyDevices implements NotificationService.ListMyDevices: the caller's
// live registrations, newest seen first; tokens are never returned.
func (s *Service) ListMyDevices(ctx context.Context, req *notificationv1.ListMyDevicesRequest) (*notificationv1.ListMyDevicesResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	offset, err := parseOffset(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pageSize(req.GetPageSize())
	rows, err := s.ent.Device.Query().Where(device.AccountID(caller.Subject), device.UnregisteredAtIsNil()).
		Order(ent.Desc(device.FieldLastSeenAt), ent.Asc(device.FieldID)).Offset(offset).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "devices")
	}
	res := &notificationv1.ListMyDevicesResponse{}
	if len(rows) > size {
		rows = rows[:size]
		res.NextPageToken = offsetToken(offset + size)
	}
	for _, d := range rows {
		res.Devices = append(res.Devices, deviceProto(d))
	}
	return res, nil
}
