package patient_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// 50 concurrent audited identity reads leave one unbroken chain; one row
// changed in the database behind the service's back is reported at that row.
func TestAuditChainUnderConcurrencyAndTampering(t *testing.T) {
	e := start(t)
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	admin := patientv1connect.NewPatientServiceClient(e.Client(t, platformtest.Admin()))
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := admin.GetPatientIdentity(ctx, &patientv1.GetPatientIdentityRequest{SubjectUuid: inv.GetSubjectUuid(), Reason: "concurrent audit test"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	auditc := patientv1connect.NewAuditServiceClient(e.Client(t, platformtest.Admin()))
	rep, err := auditc.VerifyAuditTrail(ctx, &patientv1.VerifyAuditTrailRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// 3 PARTICIPANT_INVITED events, then the 50 reads.
	if !rep.GetIntact() || rep.GetEventsChecked() != n+3 || rep.GetLastSequence() != n+3 {
		t.Fatalf("after %d concurrent reads: %v", n, rep)
	}
	page, err := auditc.ListAuditEvents(ctx, &patientv1.ListAuditEventsRequest{SubjectUuid: inv.GetSubjectUuid(),
		Actions: []patientv1.AuditAction{patientv1.AuditAction_AUDIT_ACTION_PII_READ}, PageSize: 20})
	if err != nil || len(page.GetEvents()) != 20 || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %d events, next %q, %v", len(page.GetEvents()), page.GetNextPageToken(), err)
	}
	ev := page.GetEvents()[0]
	if ev.GetActor().GetId() != "test-admin" || ev.GetReason() != "concurrent audit test" || ev.GetProcedure() != patientv1connect.PatientServiceGetPatientIdentityProcedure ||
		ev.GetActor().GetKind() != patientv1.AuditActorKind_AUDIT_ACTOR_KIND_USER || ev.GetRecordType() != patientv1.AuditRecordType_AUDIT_RECORD_TYPE_PATIENT_IDENTITY {
		t.Fatalf("event: %v", ev)
	}

	tamper(t, e.DB(t), `UPDATE audit_events SET reason = 'nothing to see' WHERE sequence = 17`)
	rep, err = auditc.VerifyAuditTrail(ctx, &patientv1.VerifyAuditTrailRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetIntact() || rep.GetFirstBrokenSequence() != 17 || rep.GetBreakReason() != patientv1.AuditChainBreak_AUDIT_CHAIN_BREAK_HASH_MISMATCH {
		t.Fatalf("after changing row 17: %v", rep)
	}
	_, err = auditc.VerifyAuditTrail(ctx, &patientv1.VerifyAuditTrailRequest{FromSequence: new(int64(1000))})
	wantCode(t, "verify beyond the newest event", err, connect.CodeOutOfRange)

	// Only administrators read the trail.
	_, err = patientv1connect.NewAuditServiceClient(e.Client(t, investigator(site1))).ListAuditEvents(ctx, &patientv1.ListAuditEventsRequest{})
	wantCode(t, "investigator lists the trail", err, connect.CodePermissionDenied)
}

// tamper changes the audit table as someone with direct database access would,
// past the append-only triggers.
func tamper(t *testing.T, d *db.DB, q string) {
	t.Helper()
	stmts := []string{`DROP TRIGGER audit_events_no_update`, q}
	if d.Dialect() == dialect.Postgres {
		stmts = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, q, `ALTER TABLE audit_events ENABLE TRIGGER USER`}
	}
	for _, s := range stmts {
		if _, err := d.SQL().ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// The CSV export holds the events before it, a header row first, and its
// summary's hash is the file's; the export itself is audited.
func TestExportAuditEvents(t *testing.T) {
	e := start(t)
	e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	c := patientv1connect.NewAuditServiceClient(e.Client(t, platformtest.Admin()))
	stream, err := c.ExportAuditEvents(ctx, &patientv1.ExportAuditEventsRequest{Reason: "inspection by the sponsor"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var file bytes.Buffer
	var sum *patientv1.AuditExportSummary
	for {
		msg, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := msg.GetSummary(); s != nil {
			sum = s
		} else {
			file.Write(msg.GetCsvChunk())
		}
	}
	records, err := csv.NewReader(bytes.NewReader(file.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256(file.Bytes())
	if sum == nil || sum.GetEventsExported() != 3 || len(records) != 4 || records[0][0] != "sequence" || records[1][6] != "AUDIT_ACTION_PARTICIPANT_INVITED" ||
		sum.GetFileSha256() != hex.EncodeToString(hash[:]) || records[1][12] != "[REDACTED]" {
		t.Fatalf("export: summary %v, rows %q", sum, records)
	}
	page, err := c.ListAuditEvents(ctx, &patientv1.ListAuditEventsRequest{Actions: []patientv1.AuditAction{patientv1.AuditAction_AUDIT_ACTION_AUDIT_EXPORTED}})
	if err != nil || len(page.GetEvents()) != 1 || page.GetEvents()[0].GetAuditEventId() != sum.GetAuditEventId() || page.GetEvents()[0].GetSequence() != 4 {
		t.Fatalf("AUDIT_EXPORTED: %v, %v", page, err)
	}
}
