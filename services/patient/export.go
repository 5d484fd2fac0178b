package patient

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"connectrpc.com/connect/v2"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
)

// csvHeader is AuditEvent's fields in order, actor and client flattened.
var csvHeader = []string{"sequence", "audit_event_id", "occurred_at", "actor_id", "actor_role", "actor_kind", "action", "record_type",
	"record_id", "subject_uuid", "field", "old_value", "new_value", "values_redacted", "reason", "trial_id", "site_id",
	"client_address", "client_user_agent", "client_app_version", "procedure", "trace_id", "hash", "previous_hash", "hash_version"}

const exportChunk = 32 << 10

// ExportAuditEvents streams the matching events as one RFC 4180 CSV file. The
// export is audited as AUDIT_EXPORTED (committed) before the first chunk; it
// holds the events before that event.
func (s *Service) ExportAuditEvents(ctx context.Context, req *patientv1.ExportAuditEventsRequest, stream patientv1connect.AuditServiceExportAuditEventsServerStream) error {
	filters := proto.Clone(req).(*patientv1.ExportAuditEventsRequest)
	filters.Reason = ""
	filterJSON, err := protojson.Marshal(filters)
	if err != nil {
		return err
	}
	var marker audit.Entry
	if err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		marker, err = s.audit.Append(ctx, tx, audit.Event{Action: "AUDIT_EXPORTED", RecordType: "AUDIT_TRAIL", Field: "filters",
			NewValue: string(filterJSON), Reason: req.GetReason()})
		return err
	}); err != nil {
		return db.ConnectError(err, "audit export")
	}
	f := filterOf(req.GetActorId(), req.GetSubjectUuid(), req.GetActions(), req.GetRecordType(), req.GetRecordId(), req.GetOccurredFrom(), req.GetOccurredUntil())
	sum := &patientv1.AuditExportSummary{AuditEventId: marker.ID}
	out := &chunker{stream: stream, hash: sha256.New()}
	w := csv.NewWriter(out)
	if err := w.Write(csvHeader); err != nil {
		return err
	}
	errDone := errors.New("done")
	err = s.audit.Each(ctx, s.db, f, func(e audit.Entry) error {
		if e.Sequence >= marker.Sequence {
			return errDone
		}
		ev := eventOf(e)
		if sum.EventsExported == 0 {
			sum.FirstSequence = e.Sequence
		}
		sum.EventsExported++
		sum.LastSequence, sum.LastEventHash = e.Sequence, e.Hash
		w.Write([]string{strconv.FormatInt(e.Sequence, 10), e.ID, e.OccurredAt.UTC().Format(time.RFC3339Nano),
			ev.GetActor().GetId(), ev.GetActor().GetRole().String(), ev.GetActor().GetKind().String(), ev.GetAction().String(),
			ev.GetRecordType().String(), e.RecordID, e.SubjectUUID, e.Field, e.OldValue, e.NewValue, strconv.FormatBool(e.ValuesRedacted),
			e.Reason, e.TrialID, e.SiteID, e.Client.Address, e.Client.UserAgent, e.Client.AppVersion, e.Procedure, e.TraceID,
			e.Hash, e.PreviousHash, strconv.Itoa(e.HashVersion)})
		w.Flush()
		return errors.Join(w.Error(), out.err)
	})
	if err != nil && !errors.Is(err, errDone) {
		if connect.CodeOf(err) != connect.CodeUnknown {
			return err
		}
		return errorf(connect.CodeInternal, "read the audit trail")
	}
	w.Flush()
	if err := out.flush(); err != nil {
		return err
	}
	sum.FileSha256 = hex.EncodeToString(out.hash.Sum(nil))
	sum.ExportedAt = timestamppb.New(s.now())
	return stream.Send(&patientv1.ExportAuditEventsResponse{Part: &patientv1.ExportAuditEventsResponse_Summary{Summary: sum}})
}

// chunker sends what is written as csv_chunk messages of about 32 KiB and
// hashes it.
type chunker struct {
	stream patientv1connect.AuditServiceExportAuditEventsServerStream
	buf    []byte
	hash   hash.Hash
	err    error
}

func (c *chunker) Write(p []byte) (int, error) {
	c.hash.Write(p)
	c.buf = append(c.buf, p...)
	if len(c.buf) >= exportChunk {
		c.err = c.flush()
	}
	return len(p), c.err
}

func (c *chunker) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.stream.Send(&patientv1.ExportAuditEventsResponse{Part: &patientv1.ExportAuditEventsResponse_CsvChunk{CsvChunk: c.buf}})
	c.buf = nil
	return err
}

// filterOf is the kit's filter for the contract's filter fields.
func filterOf(actor, subject string, actions []patientv1.AuditAction, rt patientv1.AuditRecordType, record string, from, until *timestamppb.Timestamp) audit.Filter {
	f := audit.Filter{ActorID: actor, SubjectUUID: subject, RecordID: record}
	for _, a := range actions {
		f.Actions = append(f.Actions, actionName(a))
	}
	if rt != patientv1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED {
		f.RecordType = rt.String()[len("AUDIT_RECORD_TYPE_"):]
	}
	if from != nil {
		f.From = from.AsTime()
	}
	if until != nil {
		f.Until = until.AsTime()
	}
	return f
}
