package epro

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entq "github.com/trialhub/trialhub/services/epro/ent/questionnaire"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/ent/subjectvisit"
	"github.com/trialhub/trialhub/services/epro/internal/window"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// GetComplianceReport counts a trial's questionnaire tasks per site, visit code
// and questionnaire (and subject, by_subject) from the local visit copy: every
// task of a visit that is not cancelled, whose window opened by the report
// time, is completed (a current response that is not entered in error and
// arrived by then), pending (window still open) or missed (window closed).
// The report time is the end of as_of_date in each site's own time zone, so
// one date means a different instant per site; without a date it is now.
//
// The rows of all pages are counted on each call (the total covers them) from
// one read of the trial's visits and current responses; a page token fixes
// the report time, so pages agree.
func (s *Service) GetComplianceReport(ctx context.Context, req *eprov1.GetComplianceReportRequest) (*eprov1.GetComplianceReportResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	sites, err := analysisScope(caller, req.GetTrialId(), req.GetSiteId())
	if err != nil {
		return nil, err
	}
	first := proto.Clone(req).(*eprov1.GetComplianceReportRequest)
	first.PageToken, first.PageSize = "", 0
	cur, err := readComplianceCursor(req.GetPageToken(), filterDigest(first))
	if err != nil {
		return nil, err
	}
	if cur.Filter == "" { // first page: fix the report time
		cur = complianceCursor{Filter: filterDigest(first), Now: s.now()}
		if d := req.GetAsOfDate(); d != "" {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, "as_of_date: no such day in that month")
			}
			cur.Date = d
		}
	}
	query := s.ent.SubjectVisit.Query().Where(subjectvisit.TrialID(req.GetTrialId()), subjectvisit.StatusNEQ("CANCELLED"))
	if req.GetSiteId() != "" {
		query = query.Where(subjectvisit.SiteID(req.GetSiteId()))
	} else if sites != nil {
		query = query.Where(subjectvisit.SiteIDIn(sites...))
	}
	visits, err := query.All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "compliance")
	}
	responses, err := s.ent.Response.Query().Where(entresponse.TrialID(req.GetTrialId()), entresponse.Current(true),
		entresponse.StatusNEQ("ENTERED_IN_ERROR")).Select(entresponse.FieldSubjectVisitID, entresponse.FieldQuestionnaireID,
		entresponse.FieldReceivedAt).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "compliance")
	}
	answered := map[string]time.Time{} // visit|questionnaire -> first arrival
	for _, r := range responses {
		k := r.SubjectVisitID + "|" + r.QuestionnaireID
		if t, ok := answered[k]; !ok || r.ReceivedAt.Before(t) {
			answered[k] = r.ReceivedAt
		}
	}
	urls, titles, err := s.questionnaireNames(ctx, visits)
	if err != nil {
		return nil, db.ConnectError(err, "compliance")
	}

	type key struct{ site, code, url, subject string }
	type acc struct {
		row   *eprov1.ComplianceRow
		tally window.Tally
		opens time.Time // earliest window of the code at the site: the schedule's order
	}
	rows := map[key]*acc{}
	var total window.Tally
	zones := map[string]*time.Location{}
	for _, v := range visits {
		loc, ok := zones[v.SiteTimeZone]
		if !ok {
			if loc, err = time.LoadLocation(v.SiteTimeZone); v.SiteTimeZone == "" || err != nil {
				loc = time.UTC
			}
			zones[v.SiteTimeZone] = loc
		}
		at := cur.reportTime(loc)
		w := window.Window{Opens: v.WindowOpensAt, Closes: v.WindowClosesAt}
		for _, qid := range v.QuestionnaireIds {
			url := urls[qid]
			if req.GetQuestionnaireUrl() != "" && url != req.GetQuestionnaireUrl() {
				continue
			}
			arrived, ok := answered[v.ID+"|"+qid]
			// The contract counts a task missed when its window closed unanswered:
			// no grace period here (a late answer moves it to completed).
			st := w.At(at, ok && arrived.Before(at), 0)
			if st == window.NotDue {
				continue
			}
			k := key{site: v.SiteID, code: v.VisitCode, url: url}
			if req.GetBySubject() {
				k.subject = v.SubjectUUID
			}
			a := rows[k]
			if a == nil {
				a = &acc{row: &eprov1.ComplianceRow{SiteId: v.SiteID, VisitCode: v.VisitCode, VisitName: v.VisitName,
					QuestionnaireUrl: url, QuestionnaireTitle: titles[url], SubjectUuid: k.subject, TimeZone: loc.String()},
					opens: v.WindowOpensAt}
				rows[k] = a
			}
			if v.WindowOpensAt.Before(a.opens) {
				a.opens = v.WindowOpensAt
			}
			a.tally.Add(st)
			total.Add(st)
		}
	}
	// Visit codes in schedule order: the earliest window of the code at its site.
	firstOpens := map[[2]string]time.Time{}
	for k, a := range rows {
		sk := [2]string{k.site, k.code}
		if t, ok := firstOpens[sk]; !ok || a.opens.Before(t) {
			firstOpens[sk] = a.opens
		}
	}
	keys := make([]key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.site, b.site); c != 0 {
			return c
		}
		if c := firstOpens[[2]string{a.site, a.code}].Compare(firstOpens[[2]string{b.site, b.code}]); c != 0 {
			return c
		}
		if c := strings.Compare(a.code, b.code); c != 0 {
			return c
		}
		if c := strings.Compare(a.url, b.url); c != 0 {
			return c
		}
		return strings.Compare(a.subject, b.subject)
	})
	size := pageSize(req.GetPageSize())
	res := &eprov1.GetComplianceReportResponse{AsOfDate: cur.Date, GeneratedAt: timestamppb.New(s.now()), Total: countsOf(total)}
	if res.AsOfDate == "" {
		res.AsOfDate = cur.Now.UTC().Format(time.DateOnly)
	}
	offset := min(cur.Offset, len(keys))
	page := keys[offset:]
	if len(page) > size {
		page = page[:size]
		next := cur
		next.Offset = offset + size
		res.NextPageToken = next.token()
	}
	for _, k := range page {
		a := rows[k]
		a.row.Counts = countsOf(a.tally)
		res.Rows = append(res.Rows, a.row)
	}
	return res, nil
}

// questionnaireNames maps the visits' questionnaire ids to their canonical URL
// and each URL to the title of its latest stored version. A version named by
// url|version that is not stored here yet keeps that URL.
func (s *Service) questionnaireNames(ctx context.Context, visits []*ent.SubjectVisit) (map[string]string, map[string]string, error) {
	var ids []string
	for _, v := range visits {
		ids = append(ids, v.QuestionnaireIds...)
	}
	ids = compact(ids)
	rows, err := s.ent.Questionnaire.Query().Where(entq.IDIn(ids...)).All(ctx)
	if err != nil {
		return nil, nil, err
	}
	urls, titles, newest := map[string]string{}, map[string]string{}, map[string]time.Time{}
	for _, id := range ids {
		if u, _, ok := strings.Cut(id, "|"); ok {
			urls[id] = u
		}
	}
	for _, r := range rows {
		urls[r.ID] = r.URL
		if r.CreatedAt.After(newest[r.URL]) || titles[r.URL] == "" {
			titles[r.URL], newest[r.URL] = r.Title, r.CreatedAt
		}
	}
	return urls, titles, nil
}

func countsOf(t window.Tally) *eprov1.ComplianceCounts {
	c := &eprov1.ComplianceCounts{Expected: int32(t.Expected), Completed: int32(t.Completed), Missed: int32(t.Missed), Pending: int32(t.Pending)}
	if n := t.Completed + t.Missed; n > 0 {
		r := float64(t.Completed) / float64(n)
		c.ComplianceRatio = &r
	}
	return c
}

// complianceCursor is a report's page token: the filters' digest, the report
// time fixed on the first page, and the offset of the next row.
type complianceCursor struct {
	Filter string    `json:"f"`
	Date   string    `json:"d,omitempty"` // as_of_date; empty: Now
	Now    time.Time `json:"n"`
	Offset int       `json:"o"`
}

// reportTime is the instant the report counts to at a site in loc: the end of
// Date there (the start of the next local day), or Now without a date.
func (c complianceCursor) reportTime(loc *time.Location) time.Time {
	if c.Date == "" {
		return c.Now
	}
	d, _ := time.ParseInLocation(time.DateOnly, c.Date, loc)
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
}

func (c complianceCursor) token() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func readComplianceCursor(token, filter string) (complianceCursor, error) {
	var c complianceCursor
	if token == "" {
		return c, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil || c.Filter != filter || c.Offset < 0 {
		return complianceCursor{}, connect.NewError(connect.CodeInvalidArgument, "page_token: not a token of this report (the other fields must stay as on the first page)")
	}
	return c, nil
}
