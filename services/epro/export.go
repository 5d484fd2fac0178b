package epro

// ExportResponses streams from the database: one read-only snapshot
// transaction (REPEATABLE READ on PostgreSQL, a read transaction on SQLite),
// read in chunks of exportChunk rows by keyset, each chunk rendered, sent and
// dropped before the next is read. Memory is one chunk and the columns,
// however many rows match; the SHA-256 of the file is computed as it goes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	"github.com/trialhub/trialhub/services/epro/ent"
	entq "github.com/trialhub/trialhub/services/epro/ent/questionnaire"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/internal/deid"
	"github.com/trialhub/trialhub/services/epro/internal/fhir"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// exportChunk is how many rows an export reads from the database at a time
// (500; tests set less).
var exportChunk atomic.Int64

func init() { exportChunk.Store(500) }

// exportChunkRead, when set (tests), is told the size of each chunk read.
var exportChunkRead atomic.Pointer[func(rows int)]

// ExportNotes is the response header that says how an export replaces dates.
const ExportNotes = "Trialhub-Export-Notes"

// exportNotes says, in the export's header, how it stands in for what it leaves out.
const exportNotes = "no calendar dates: authored and date answers are study days " +
	"(day 1 = enrollment, no day 0, in the site's time zone); questionnaire is the canonical url|version"

// ExportResponses streams a trial's de-identified responses (the latest
// revision of each) as CSV with a codebook or as FHIR R4 QuestionnaireResponse
// NDJSON, and records the export on the audit trail (who, filters, row count,
// checksum) before the trailer: a stream without a trailer was not recorded
// and is incomplete.
func (s *Service) ExportResponses(ctx context.Context, req *eprov1.ExportResponsesRequest, stream eprov1connect.EproServiceExportResponsesServerStream) error {
	caller, _ := auth.CallerFrom(ctx)
	if _, err := analysisScope(caller, req.GetTrialId(), req.GetSiteId()); err != nil {
		return err
	}
	sel := responseSelection{
		trialID: req.GetTrialId(), siteID: req.GetSiteId(), questionnaireID: req.GetQuestionnaireId(),
		questionnaireURL: req.GetQuestionnaireUrl(), visitCodes: req.GetVisitCodes(), statuses: statusNames(req.GetStatuses()),
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Dialect() == dialect.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.ReadSQL().BeginTx(ctx, opts)
	if err != nil {
		return db.ConnectError(err, "responses")
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to commit
	c := ent.NewClient(ent.Driver(entsql.NewDriver(s.db.Dialect(), entsql.Conn{ExecQuerier: tx})))

	e := &exporter{stream: stream, sum: sha256.New()}
	exportID, generated := uuid.NewString(), s.now()
	header := &eprov1.ExportHeader{ExportId: exportID, Format: req.GetFormat(), GeneratedAt: timestamppb.New(generated), Notes: exportNotes}
	r := newRenderer(c, freeTextOf(req.GetFreeText()))
	if info, ok := connect.CallInfoForServerContext(ctx); ok {
		info.ResponseHeader().Set(ExportNotes, exportNotes)
	}
	var csvCols *csvColumns
	if req.GetFormat() == eprov1.ExportFormat_EXPORT_FORMAT_CSV {
		versions, err := exportVersions(ctx, c, r, sel)
		if err != nil {
			return db.ConnectError(err, "responses")
		}
		csvCols = newCSVColumns(versions)
		header.MediaType = "text/csv"
		header.CsvHeader = csvLine(csvCols.names())
		e.sum.Write([]byte(header.CsvHeader))
	} else {
		header.MediaType = "application/fhir+ndjson"
	}
	if err := stream.Send(&eprov1.ExportResponsesResponse{Part: &eprov1.ExportResponsesResponse_Header{Header: header}}); err != nil {
		return err
	}
	if csvCols != nil {
		if err := stream.Send(&eprov1.ExportResponsesResponse{Part: &eprov1.ExportResponsesResponse_Codebook{
			Codebook: &eprov1.ExportCodebook{Columns: csvCols.codebook}}}); err != nil {
			return err
		}
	}
	var after *responseKey
	chunk := int(exportChunk.Load())
	for {
		rows, err := sel.page(ctx, c, after, chunk)
		if err != nil {
			return db.ConnectError(err, "responses")
		}
		if seen := exportChunkRead.Load(); seen != nil {
			(*seen)(len(rows))
		}
		if len(rows) == 0 {
			break
		}
		after = keyOf(rows[len(rows)-1])
		views, err := r.render(ctx, rows)
		if err != nil {
			return connect.NewError(connect.CodeInternal, "stored responses are unreadable").WithCause(err)
		}
		for _, v := range views {
			var data string
			if csvCols != nil {
				data = csvLine(csvCols.row(v))
			} else if data, err = ndjsonLine(v); err != nil {
				return connect.NewError(connect.CodeInternal, "stored responses are unreadable").WithCause(err)
			}
			if err := e.send(data); err != nil {
				return err
			}
		}
		if len(rows) < chunk {
			break
		}
	}
	_ = tx.Rollback()
	sum := hex.EncodeToString(e.sum.Sum(nil))
	filters, _ := protojson.Marshal(req)
	if err := s.db.InTx(ctx, func(ctx context.Context, wtx *db.Tx) error {
		_, err := s.audit.Append(ctx, wtx, audit.Event{
			Action: "RESPONSES_EXPORTED", RecordType: "EXPORT", RecordID: exportID,
			NewValue: fmt.Sprintf("%s rows=%d sha256=%s", trimEnum(req.GetFormat().String(), "EXPORT_FORMAT_"), e.rows, sum),
			Reason:   string(filters), TrialID: req.GetTrialId(), SiteID: req.GetSiteId(),
		})
		return err
	}); err != nil {
		return db.ConnectError(err, "export audit")
	}
	return stream.Send(&eprov1.ExportResponsesResponse{Part: &eprov1.ExportResponsesResponse_Trailer{
		Trailer: &eprov1.ExportTrailer{RowCount: int32(e.rows), Sha256: sum}}})
}

type exporter struct {
	stream eprov1connect.EproServiceExportResponsesServerStream
	sum    hash.Hash
	rows   int
}

func (e *exporter) send(data string) error {
	e.sum.Write([]byte(data))
	e.rows++
	return e.stream.Send(&eprov1.ExportResponsesResponse{Part: &eprov1.ExportResponsesResponse_Row{Row: &eprov1.ExportRow{Data: data}}})
}

// exportVersions lists the questionnaire versions the selection's rows answer,
// by url and then oldest version first, so the CSV's columns are known before
// its first row.
func exportVersions(ctx context.Context, c *ent.Client, r *renderer, sel responseSelection) ([]*version, error) {
	ids, err := c.Response.Query().Where(sel.where()...).Unique(true).Select(entresponse.FieldQuestionnaireID).Strings(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Questionnaire.Query().Where(entq.IDIn(ids...)).
		Order(ent.Asc(entq.FieldURL), ent.Asc(entq.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, err
	}
	var out []*version
	for _, row := range rows {
		v, err := r.version(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// csvLine is one CSV record with its CRLF (RFC 4180); cells are escaped against
// formulas already.
func csvLine(cells []string) string {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true
	_ = w.Write(cells) // a bytes.Buffer does not fail
	w.Flush()
	return b.String()
}

// csvColumns is the column layout of a CSV export: the common columns, then per
// questionnaire version its item and score columns.
type csvColumns struct {
	codebook []*eprov1.CodebookColumn
	// per version id: column index of each item and each score (and band)
	items  map[string]map[string]int
	scores map[string]map[string]int
}

// commonColumns are the columns every row fills.
var commonColumns = []*eprov1.CodebookColumn{
	{Name: "subject_uuid", Label: "The subject's random pseudonym (UUIDv4)", Type: eprov1.ColumnType_COLUMN_TYPE_UUID},
	{Name: "site_id", Label: "The subject's site (UUID)", Type: eprov1.ColumnType_COLUMN_TYPE_UUID},
	{Name: "site_code", Label: "The subject's site code in the trial, e.g. DE-001", Type: eprov1.ColumnType_COLUMN_TYPE_STRING},
	{Name: "subject_visit_id", Label: "The subject's planned visit (UUID)", Type: eprov1.ColumnType_COLUMN_TYPE_UUID},
	{Name: "visit_code", Label: "The visit's code in the schedule, e.g. W04", Type: eprov1.ColumnType_COLUMN_TYPE_STRING},
	{Name: "visit_name", Label: "The visit's name in the schedule", Type: eprov1.ColumnType_COLUMN_TYPE_STRING},
	{Name: "authored_study_day", Label: "Study day the response was authored on", Type: eprov1.ColumnType_COLUMN_TYPE_INTEGER,
		Notes: "Day 1 = enrollment, the day before is -1, no day 0, counted in the site's time zone; no calendar dates are exported. Empty when the enrollment date is not known yet."},
	{Name: "questionnaire_url", Label: "The questionnaire's canonical URL", Type: eprov1.ColumnType_COLUMN_TYPE_STRING},
	{Name: "questionnaire_version", Label: "The questionnaire version answered", Type: eprov1.ColumnType_COLUMN_TYPE_STRING},
	{Name: "response_id", Label: "The response (UUID)", Type: eprov1.ColumnType_COLUMN_TYPE_UUID},
	{Name: "revision", Label: "The revision exported (the latest)", Type: eprov1.ColumnType_COLUMN_TYPE_INTEGER},
	{Name: "status", Label: "The response's status", Type: eprov1.ColumnType_COLUMN_TYPE_CODE, Values: []*eprov1.CodebookValue{
		{Value: "COMPLETED", Label: "Submitted, unchanged"}, {Value: "AMENDED", Label: "Corrected after submission"},
		{Value: "ENTERED_IN_ERROR", Label: "Recorded in error"}}},
	{Name: "late", Label: "Arrived after the window closed, within the grace period", Type: eprov1.ColumnType_COLUMN_TYPE_BOOLEAN},
	{Name: "protocol_deviation", Label: "Accepted from the quarantine by the site", Type: eprov1.ColumnType_COLUMN_TYPE_BOOLEAN},
	{Name: "fired_alert_rule_names", Label: "Alert rules that fired", Type: eprov1.ColumnType_COLUMN_TYPE_STRING,
		Notes: "Names joined by \";\"; empty when none fired. Never a patient message."},
	{Name: "withheld", Label: "Answers whose free text is withheld, and why", Type: eprov1.ColumnType_COLUMN_TYPE_STRING,
		Notes: "\"link_id:REASON\" joined by \";\" (FREE_TEXT_NOT_REQUESTED, FREE_TEXT_UNREVIEWED, FREE_TEXT_REDACTED)."},
}

var columnUnsafe = regexp.MustCompile(`[^A-Za-z0-9_]+`)

func newCSVColumns(versions []*version) *csvColumns {
	cols := &csvColumns{codebook: slices.Clone(commonColumns), items: map[string]map[string]int{}, scores: map[string]map[string]int{}}
	names := map[string]int{}
	for _, v := range versions {
		names[v.def.Name]++
	}
	for _, v := range versions {
		prefix := v.def.Name
		if names[prefix] > 1 { // two versions of one instrument: the version names its columns
			prefix += "_v" + columnUnsafe.ReplaceAllString(v.def.Version, "_")
		}
		canonical := "Questionnaire " + v.def.Canonical() + "."
		cols.items[v.row.ID], cols.scores[v.row.ID] = map[string]int{}, map[string]int{}
		v.def.Walk(func(_ string, it *q.Item) bool {
			if !it.Type.Answerable() {
				return true
			}
			cols.items[v.row.ID][it.LinkID] = len(cols.codebook)
			cols.codebook = append(cols.codebook, itemColumn(v.def, prefix, canonical, it))
			return true
		})
		for _, rule := range v.def.Rules {
			cols.scores[v.row.ID][rule.Name] = len(cols.codebook)
			col := &eprov1.CodebookColumn{Name: prefix + "." + rule.Name, Label: rule.Title, Type: eprov1.ColumnType_COLUMN_TYPE_DECIMAL,
				QuestionnaireUrl: v.def.URL, Notes: canonical + " Empty when the total could not be computed."}
			if rule.Code != nil {
				col.Code = &eprov1.Coding{System: rule.Code.System, Code: rule.Code.Code, Display: rule.Code.Display}
			}
			band := &eprov1.CodebookColumn{Name: prefix + "." + rule.Name + ".band", Label: rule.Title + ": severity band",
				Type: eprov1.ColumnType_COLUMN_TYPE_CODE, QuestionnaireUrl: v.def.URL, Notes: canonical}
			for _, b := range rule.Bands {
				lo, hi := b.Min, b.Max
				band.Values = append(band.Values, &eprov1.CodebookValue{Value: b.Label,
					Label: fmt.Sprintf("%s (%s to %s)", b.Label, strconv.FormatFloat(lo, 'f', -1, 64), strconv.FormatFloat(hi, 'f', -1, 64))})
			}
			cols.codebook = append(cols.codebook, col, band)
		}
	}
	return cols
}

func itemColumn(d *q.Definition, prefix, canonical string, it *q.Item) *eprov1.CodebookColumn {
	col := &eprov1.CodebookColumn{Name: prefix + "." + it.LinkID, Label: strings.TrimSpace(it.Prefix + " " + it.Text.In(d.Language, d.Language)),
		QuestionnaireUrl: d.URL, LinkId: it.LinkID, Notes: canonical}
	if it.Code != nil {
		col.Code = &eprov1.Coding{System: it.Code.System, Code: it.Code.Code, Display: it.Code.Display}
	}
	switch it.Type {
	case q.Boolean:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_BOOLEAN
	case q.Integer:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_INTEGER
	case q.Decimal:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_DECIMAL
	case q.Quantity:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_DECIMAL
		if it.Unit != nil {
			col.Unit = it.Unit.Display
			if col.Unit == "" {
				col.Unit = it.Unit.Code
			}
		}
	case q.Date, q.DateTime:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_INTEGER
		col.Notes += " Dates are given as study days (day 1 = enrollment, no day 0)."
	case q.Time:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_TIME
	case q.Choice, q.OpenChoice:
		col.Type = eprov1.ColumnType_COLUMN_TYPE_CODE
		for _, o := range it.Options {
			cv := &eprov1.CodebookValue{Score: o.Score}
			switch o.Value.Kind {
			case q.KindCoding:
				cv.Value, cv.Label = o.Value.Coding.Code, o.Value.Coding.Display
			case q.KindInteger:
				cv.Value = strconv.FormatInt(o.Value.Int, 10)
			default:
				cv.Value = o.Value.Str
			}
			cv.Value = deid.CSVCell(cv.Value)
			col.Values = append(col.Values, cv)
		}
		if it.Type == q.OpenChoice {
			col.Notes += " A typed-in answer is free text: empty unless reviewed and requested (see withheld)."
		}
	default: // string, text, url
		col.Type = eprov1.ColumnType_COLUMN_TYPE_STRING
		col.Notes += " Free text: empty unless a reviewer released it and the export asked for REVIEWED_ONLY (see withheld)."
	}
	if it.Age {
		col.Notes += " Ages over 89 are given as 90+."
	}
	if it.Repeats {
		col.Notes += " Several answers are joined by \"|\"."
	}
	return col
}

func (c *csvColumns) names() []string {
	out := make([]string, len(c.codebook))
	for i, col := range c.codebook {
		out[i] = col.GetName()
	}
	return out
}

// row is the CSV record of one response: the common cells, and the cells of its
// questionnaire version's columns (the other versions' stay empty).
func (c *csvColumns) row(v view) []string {
	cells := make([]string, len(c.codebook))
	row, visit := v.row, v.visit
	day := ""
	if v.studyDay != 0 {
		day = strconv.Itoa(v.studyDay)
	}
	var fired []string
	for _, f := range v.fired {
		fired = append(fired, f.GetAlertRuleName())
	}
	common := []string{row.SubjectUUID, row.SiteID, visit.SiteCode, row.SubjectVisitID, visit.VisitCode, visit.VisitName, day,
		v.version.row.URL, v.version.row.Version, row.ResponseID, strconv.Itoa(row.Revision), row.Status,
		strconv.FormatBool(row.Late), strconv.FormatBool(row.ProtocolDeviation), strings.Join(fired, ";"), withheldCell(v.answers)}
	for i, s := range common {
		cells[i] = deid.CSVCell(s)
	}
	for _, a := range v.answers {
		if i, ok := c.items[row.QuestionnaireID][a.LinkID]; ok {
			cells[i] = a.Cell()
		}
	}
	for _, sc := range v.scores {
		i, ok := c.scores[row.QuestionnaireID][sc.GetScoringRuleName()]
		if !ok {
			continue
		}
		if sc.Value != nil {
			cells[i] = strconv.FormatFloat(sc.GetValue(), 'f', -1, 64)
		}
		if sc.GetBand() != nil {
			cells[i+1] = deid.CSVCell(sc.GetBand().GetLabel())
		}
	}
	return cells
}

var fhirStatus = map[string]string{
	"IN_PROGRESS": "in-progress", "COMPLETED": "completed", "AMENDED": "amended", "ENTERED_IN_ERROR": "entered-in-error", "STOPPED": "stopped",
}

// ndjsonLine is one FHIR R4 QuestionnaireResponse line.
func ndjsonLine(v view) (string, error) {
	b, err := fhir.ExportResponse(v.version.def, fhir.Response{ID: v.row.ResponseID, Status: fhirStatus[v.row.Status],
		SubjectUUID: v.row.SubjectUUID, AuthoredStudyDay: v.studyDay, Answers: v.answers})
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}
