package epro

// The de-identified views for analysts and investigators: ListResponses here,
// ExportResponses in export.go, GetComplianceReport in compliance.go. Both
// listings read responses in one order (site, subject_uuid, authored_at,
// response_id, revision) a page at a time by keyset, so a listing page and an
// export chunk are the same query, and an export never holds more than one
// chunk in memory.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect/sql"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entreview "github.com/trialhub/trialhub/services/epro/ent/freetextreview"
	"github.com/trialhub/trialhub/services/epro/ent/predicate"
	entq "github.com/trialhub/trialhub/services/epro/ent/questionnaire"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/ent/subjectvisit"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/epro/internal/deid"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// ListResponses lists a trial's responses in the de-identified view: study days
// instead of dates, free text as the caller may see it, the definition's
// displays and units, ages over 89 as 90.
func (s *Service) ListResponses(ctx context.Context, req *eprov1.ListResponsesRequest) (*eprov1.ListResponsesResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	sites, err := analysisScope(caller, req.GetTrialId(), req.GetSiteId())
	if err != nil {
		return nil, err
	}
	if req.GetFreeText() == eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL && caller.Role != authzv1.Role_ROLE_INVESTIGATOR {
		return nil, connect.NewError(connect.CodePermissionDenied, "free_text: ALL is for investigators of the subject's site")
	}
	first := proto.Clone(req).(*eprov1.ListResponsesRequest)
	first.PageToken, first.PageSize = "", 0
	filter := filterDigest(first)
	after, err := readResponseCursor(ctx, s.ent, req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	sel := responseSelection{
		trialID: req.GetTrialId(), siteID: req.GetSiteId(), sites: sites, questionnaireID: req.GetQuestionnaireId(),
		questionnaireURL: req.GetQuestionnaireUrl(), visitCodes: req.GetVisitCodes(), subjectUUID: req.GetSubjectUuid(),
		statuses: statusNames(req.GetStatuses()), history: req.GetIncludeHistory(),
	}
	size := pageSize(req.GetPageSize())
	rows, err := sel.page(ctx, s.ent, after, size+1)
	if err != nil {
		return nil, db.ConnectError(err, "responses")
	}
	res := &eprov1.ListResponsesResponse{}
	if len(rows) > size {
		rows = rows[:size]
		res.NextPageToken = writeResponseCursor(filter, rows[size-1])
	}
	r := newRenderer(s.ent, freeTextOf(req.GetFreeText()))
	views, err := r.render(ctx, rows)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, "stored responses are unreadable").WithCause(err)
	}
	for _, v := range views {
		res.Responses = append(res.Responses, v.deidentified())
	}
	return res, nil
}

// analysisScope checks the caller's scope for a view of a trial and returns the
// sites it is limited to: nil for every site (analysts see the whole trial of
// their token, administrators every trial), an investigator's sites otherwise.
func analysisScope(c auth.Caller, trialID, siteID string) ([]string, error) {
	if !c.CanAccessTrial(trialID) {
		return nil, connect.NewError(connect.CodePermissionDenied, "trial_id: not in your scope")
	}
	if c.Role != authzv1.Role_ROLE_INVESTIGATOR {
		return nil, nil
	}
	if siteID != "" {
		if !c.CanAccessSite(siteID) {
			return nil, connect.NewError(connect.CodePermissionDenied, "site_id: not in your scope")
		}
		return nil, nil
	}
	return append([]string{}, c.Sites...), nil // empty: no site, never every site
}

func freeTextOf(v eprov1.FreeTextVisibility) deid.FreeText {
	switch v {
	case eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_REVIEWED_ONLY:
		return deid.ReviewedOnly
	case eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL:
		return deid.All
	}
	return deid.Withhold
}

func statusNames(sts []eprov1.ResponseStatus) []string {
	var out []string
	for _, st := range sts {
		out = append(out, trimEnum(st.String(), "RESPONSE_STATUS_"))
	}
	return out
}

// responseSelection is what a listing or an export selects.
type responseSelection struct {
	trialID, siteID, questionnaireID, questionnaireURL, subjectUUID string
	sites                                                           []string // nil: no site scope
	visitCodes                                                      []string
	statuses                                                        []string // empty: every status but ENTERED_IN_ERROR
	history                                                         bool     // earlier revisions too
}

func (sel responseSelection) where() []predicate.Response {
	p := []predicate.Response{entresponse.TrialID(sel.trialID)}
	if sel.siteID != "" {
		p = append(p, entresponse.SiteID(sel.siteID))
	}
	if sel.sites != nil {
		p = append(p, entresponse.SiteIDIn(sel.sites...))
	}
	if sel.questionnaireID != "" {
		p = append(p, entresponse.QuestionnaireID(sel.questionnaireID))
	}
	if sel.questionnaireURL != "" {
		p = append(p, predicate.Response(func(s *sql.Selector) {
			t := sql.Table(entq.Table)
			s.Where(sql.In(s.C(entresponse.FieldQuestionnaireID),
				sql.Select(t.C(entq.FieldID)).From(t).Where(sql.EQ(t.C(entq.FieldURL), sel.questionnaireURL))))
		}))
	}
	if len(sel.visitCodes) > 0 {
		codes := make([]any, 0, len(sel.visitCodes))
		for _, c := range sel.visitCodes {
			codes = append(codes, c)
		}
		p = append(p, predicate.Response(func(s *sql.Selector) {
			t := sql.Table(subjectvisit.Table)
			s.Where(sql.In(s.C(entresponse.FieldSubjectVisitID), sql.Select(t.C(subjectvisit.FieldID)).From(t).
				Where(sql.And(sql.EQ(t.C(subjectvisit.FieldTrialID), sel.trialID), sql.In(t.C(subjectvisit.FieldVisitCode), codes...)))))
		}))
	}
	if sel.subjectUUID != "" {
		p = append(p, entresponse.SubjectUUID(sel.subjectUUID))
	}
	if len(sel.statuses) > 0 {
		p = append(p, entresponse.StatusIn(sel.statuses...))
	} else {
		p = append(p, entresponse.StatusNEQ("ENTERED_IN_ERROR"))
	}
	if !sel.history {
		p = append(p, entresponse.Current(true))
	}
	return p
}

// page reads up to limit responses after the key (nil: from the start), in
// listing order.
func (sel responseSelection) page(ctx context.Context, c *ent.Client, after *responseKey, limit int) ([]*ent.Response, error) {
	where := sel.where()
	if after != nil {
		where = append(where, after.predicate())
	}
	return c.Response.Query().Where(where...).Order(ent.Asc(entresponse.FieldSiteID), ent.Asc(entresponse.FieldSubjectUUID),
		ent.Asc(entresponse.FieldAuthoredAt), ent.Asc(entresponse.FieldResponseID), ent.Asc(entresponse.FieldRevision)).
		Limit(limit).All(ctx)
}

// responseKey is a response's place in listing order.
type responseKey struct {
	Site, Subject string
	Authored      time.Time
	Response      string
	Revision      int
}

func keyOf(r *ent.Response) *responseKey {
	return &responseKey{Site: r.SiteID, Subject: r.SubjectUUID, Authored: r.AuthoredAt, Response: r.ResponseID, Revision: r.Revision}
}

// predicate selects the responses after k in listing order.
func (k *responseKey) predicate() predicate.Response {
	return entresponse.Or(entresponse.SiteIDGT(k.Site), entresponse.And(entresponse.SiteID(k.Site),
		entresponse.Or(entresponse.SubjectUUIDGT(k.Subject), entresponse.And(entresponse.SubjectUUID(k.Subject),
			entresponse.Or(entresponse.AuthoredAtGT(k.Authored), entresponse.And(entresponse.AuthoredAt(k.Authored),
				entresponse.Or(entresponse.ResponseIDGT(k.Response), entresponse.And(entresponse.ResponseID(k.Response),
					entresponse.RevisionGT(k.Revision)))))))))
}

// A page token names the last response of the page (id and revision, never
// its authored time: a token is readable, and a de-identified view shows no
// instants) and a digest of the query's other fields, so that a token is
// refused with other filters. The next page resumes after that row's key.
type responseCursor struct {
	Filter   string `json:"f"`
	Response string `json:"r"`
	Revision int    `json:"v"`
}

// filterDigest is a short digest of a request whose paging fields are
// cleared.
func filterDigest(m proto.Message) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func writeResponseCursor(filter string, last *ent.Response) string {
	b, _ := json.Marshal(responseCursor{Filter: filter, Response: last.ResponseID, Revision: last.Revision})
	return base64.RawURLEncoding.EncodeToString(b)
}

func readResponseCursor(ctx context.Context, c *ent.Client, token, filter string) (*responseKey, error) {
	if token == "" {
		return nil, nil
	}
	var cur responseCursor
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(raw, &cur)
	}
	bad := connect.NewError(connect.CodeInvalidArgument, "page_token: not a token of this listing (the other fields must stay as on the first page)")
	if err != nil || cur.Filter != filter || cur.Response == "" {
		return nil, bad
	}
	row, err := c.Response.Get(ctx, cur.Response+"/"+strconv.Itoa(cur.Revision))
	if ent.IsNotFound(err) {
		return nil, bad
	}
	if err != nil {
		return nil, db.ConnectError(err, "responses")
	}
	return keyOf(row), nil
}

// renderer de-identifies stored responses, caching questionnaire versions and
// time zones across pages.
type renderer struct {
	c         *ent.Client
	freeText  deid.FreeText
	versions  map[string]*version
	locations map[string]*time.Location
}

// version is a stored questionnaire version with its domain definition.
type version struct {
	row   *ent.Questionnaire
	def   *q.Definition
	order map[string]int // link_id -> position in the definition
}

func newRenderer(c *ent.Client, ft deid.FreeText) *renderer {
	return &renderer{c: c, freeText: ft, versions: map[string]*version{}, locations: map[string]*time.Location{}}
}

func (r *renderer) version(ctx context.Context, id string) (*version, error) {
	if v, ok := r.versions[id]; ok {
		return v, nil
	}
	row, err := r.c.Questionnaire.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("questionnaire %s: %w", id, err)
	}
	pb, err := questionnaireOf(row)
	if err != nil {
		return nil, err
	}
	v := &version{row: row, def: contract.Definition(pb), order: map[string]int{}}
	v.def.Walk(func(_ string, it *q.Item) bool {
		v.order[it.LinkID] = len(v.order)
		return true
	})
	r.versions[id] = v
	return v, nil
}

// location is the site's zone; UTC when the copy has none yet or it is unknown.
func (r *renderer) location(zone string) *time.Location {
	if loc, ok := r.locations[zone]; ok {
		return loc
	}
	loc, err := time.LoadLocation(zone)
	if zone == "" || err != nil {
		loc = time.UTC
	}
	r.locations[zone] = loc
	return loc
}

// view is one de-identified response revision with what the views need.
type view struct {
	row      *ent.Response
	visit    *ent.SubjectVisit
	version  *version
	studyDay int // 0 when the subject's enrollment date has not reached the copy yet
	answers  []deid.Answer
	scores   []*eprov1.Score
	fired    []*eprov1.FiredAlert
}

// render de-identifies a page of responses: three queries (visits, reviews,
// and new questionnaire versions) whatever the page size.
func (r *renderer) render(ctx context.Context, rows []*ent.Response) ([]view, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	var visitIDs, responseIDs []string
	for _, row := range rows {
		visitIDs = append(visitIDs, row.SubjectVisitID)
		responseIDs = append(responseIDs, row.ResponseID)
	}
	visits, err := r.c.SubjectVisit.Query().Where(subjectvisit.IDIn(compact(visitIDs)...)).All(ctx)
	if err != nil {
		return nil, err
	}
	byVisit := map[string]*ent.SubjectVisit{}
	for _, v := range visits {
		byVisit[v.ID] = v
	}
	reviews, err := r.c.FreeTextReview.Query().Where(entreview.ResponseIDIn(compact(responseIDs)...)).All(ctx)
	if err != nil {
		return nil, err
	}
	byRevision := map[string]map[string]deid.Review{}
	for _, rv := range reviews {
		key := rv.ResponseID + "/" + strconv.Itoa(rv.Revision)
		if byRevision[key] == nil {
			byRevision[key] = map[string]deid.Review{}
		}
		byRevision[key][rv.LinkID] = reviewOf(rv.Decision)
	}
	out := make([]view, 0, len(rows))
	for _, row := range rows {
		ver, err := r.version(ctx, row.QuestionnaireID)
		if err != nil {
			return nil, err
		}
		visit := byVisit[row.SubjectVisitID]
		if visit == nil {
			return nil, fmt.Errorf("response %s: visit %s is not in the local copy", row.ID, row.SubjectVisitID)
		}
		loc := r.location(visit.SiteTimeZone)
		policy := deid.Policy{FreeText: r.freeText, Location: loc}
		v := view{row: row, visit: visit, version: ver}
		if start, err := time.ParseInLocation(time.DateOnly, visit.EnrollmentDate, loc); err == nil {
			policy.Start = start
			v.studyDay = policy.Day(row.AuthoredAt)
		}
		stored := &eprov1.SubmitResponseRequest{}
		if err := protojson.Unmarshal([]byte(row.Answers), stored); err != nil {
			return nil, fmt.Errorf("response %s answers: %w", row.ID, err)
		}
		answers := contract.Answers(stored.GetAnswers())
		slices.SortStableFunc(answers, func(a, b q.Answer) int { return ver.order[a.LinkID] - ver.order[b.LinkID] })
		v.answers = policy.Response(ver.def, answers, byRevision[row.ID])
		scores := &eprov1.ResponseReceipt{}
		if err := protojson.Unmarshal([]byte(row.Scores), scores); err != nil {
			return nil, fmt.Errorf("response %s scores: %w", row.ID, err)
		}
		v.scores = scores.GetScores()
		for _, name := range row.FiredAlerts {
			fa := &eprov1.FiredAlert{AlertRuleName: name}
			for _, a := range ver.def.Alerts {
				if a.Name == name {
					fa.Priority = eprov1.AlertPriority(a.Priority)
				}
			}
			v.fired = append(v.fired, fa) // never the patient's message
		}
		out = append(out, v)
	}
	return out, nil
}

func reviewOf(decision string) deid.Review {
	switch decision {
	case "REVIEWED":
		return deid.Reviewed
	case "REDACTED":
		return deid.Redacted
	}
	return deid.Unreviewed
}

func compact(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// deidentified is the contract's DeidentifiedResponse of the view.
func (v view) deidentified() *eprov1.DeidentifiedResponse {
	row := v.row
	pb := &eprov1.DeidentifiedResponse{
		ResponseId: row.ResponseID, Revision: int32(row.Revision), Current: row.Current,
		Status: eprov1.ResponseStatus(eprov1.ResponseStatus_value["RESPONSE_STATUS_"+row.Status]), TrialId: row.TrialID,
		SiteId: row.SiteID, SubjectUuid: row.SubjectUUID, SubjectVisitId: row.SubjectVisitID, VisitCode: v.visit.VisitCode,
		VisitName: v.visit.VisitName, AuthoredStudyDay: int32(v.studyDay),
		Questionnaire: &eprov1.QuestionnaireRef{QuestionnaireId: v.version.row.ID, QuestionnaireUrl: v.version.row.URL,
			Version: v.version.row.Version, Title: v.version.row.Title},
		Scores: v.scores, FiredAlerts: v.fired, AuthorRole: authzv1.Role(authzv1.Role_value[row.AuthorRole]),
		Late: row.Late, ProtocolDeviation: row.ProtocolDeviation,
	}
	for _, a := range v.answers {
		ia := &eprov1.DeidentifiedItemAnswer{LinkId: a.LinkID, Score: a.Score, WithheldReason: contract.WithheldReason(a.Withheld)}
		for _, val := range a.Values {
			ia.Values = append(ia.Values, contract.AnswerValue(val))
		}
		for _, d := range a.StudyDays {
			ia.StudyDays = append(ia.StudyDays, int32(d))
		}
		if a.Withheld != deid.None && a.Withheld != deid.CalendarDate {
			pb.HasWithheldAnswers = true
		}
		pb.Answers = append(pb.Answers, ia)
	}
	return pb
}

// withheldCell lists an answer set's withheld free text as "link_id:REASON"
// joined by ";", for the CSV's withheld column.
func withheldCell(answers []deid.Answer) string {
	var parts []string
	for _, a := range answers {
		if a.Withheld != deid.None && a.Withheld != deid.CalendarDate {
			parts = append(parts, a.LinkID+":"+trimEnum(contract.WithheldReason(a.Withheld).String(), "WITHHELD_REASON_"))
		}
	}
	return strings.Join(parts, ";")
}
