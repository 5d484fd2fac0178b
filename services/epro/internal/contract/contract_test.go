package contract

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/internal/deid"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

// The domain enums convert by value; each pair is checked by name here.
func TestEnumsMatch(t *testing.T) {
	types := map[q.Type]eprov1.ItemType{
		q.Group: eprov1.ItemType_ITEM_TYPE_GROUP, q.Display: eprov1.ItemType_ITEM_TYPE_DISPLAY, q.Boolean: eprov1.ItemType_ITEM_TYPE_BOOLEAN,
		q.Decimal: eprov1.ItemType_ITEM_TYPE_DECIMAL, q.Integer: eprov1.ItemType_ITEM_TYPE_INTEGER, q.Date: eprov1.ItemType_ITEM_TYPE_DATE,
		q.DateTime: eprov1.ItemType_ITEM_TYPE_DATE_TIME, q.Time: eprov1.ItemType_ITEM_TYPE_TIME, q.String: eprov1.ItemType_ITEM_TYPE_STRING,
		q.Text: eprov1.ItemType_ITEM_TYPE_TEXT, q.URL: eprov1.ItemType_ITEM_TYPE_URL, q.Choice: eprov1.ItemType_ITEM_TYPE_CHOICE,
		q.OpenChoice: eprov1.ItemType_ITEM_TYPE_OPEN_CHOICE, q.Quantity: eprov1.ItemType_ITEM_TYPE_QUANTITY,
	}
	if len(types) != len(eprov1.ItemType_name)-1 {
		t.Errorf("%d item types mapped, the contract has %d", len(types), len(eprov1.ItemType_name)-1)
	}
	for d, pb := range types {
		if int32(d) != int32(pb) {
			t.Errorf("item type %v = %d, contract %v = %d", d, d, pb, pb)
		}
	}
	ops := map[q.Operator]eprov1.EnableWhenOperator{
		q.Exists: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_EXISTS, q.Equal: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_EQUALS,
		q.NotEqual: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_NOT_EQUALS, q.Greater: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_GREATER,
		q.Less: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_LESS, q.GreaterOrEqual: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_GREATER_OR_EQUAL,
		q.LessOrEqual: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_LESS_OR_EQUAL,
	}
	for d, pb := range ops {
		if int32(d) != int32(pb) {
			t.Errorf("operator %v = %d, contract %v = %d", d, d, pb, pb)
		}
	}
	cmps := map[scoring.Op]eprov1.ComparisonOperator{
		scoring.OpEqual: eprov1.ComparisonOperator_COMPARISON_OPERATOR_EQUALS, scoring.OpNotEqual: eprov1.ComparisonOperator_COMPARISON_OPERATOR_NOT_EQUALS,
		scoring.OpGreater: eprov1.ComparisonOperator_COMPARISON_OPERATOR_GREATER, scoring.OpLess: eprov1.ComparisonOperator_COMPARISON_OPERATOR_LESS,
		scoring.OpGreaterOrEqual: eprov1.ComparisonOperator_COMPARISON_OPERATOR_GREATER_OR_EQUAL, scoring.OpLessOrEqual: eprov1.ComparisonOperator_COMPARISON_OPERATOR_LESS_OR_EQUAL,
	}
	for d, pb := range cmps {
		if int32(d) != int32(pb) {
			t.Errorf("comparison %v = %d, contract %v = %d", d, d, pb, pb)
		}
	}
	others := []struct {
		name  string
		d, pb int32
	}{
		{"all", int32(q.All), int32(eprov1.EnableBehavior_ENABLE_BEHAVIOR_ALL)},
		{"any", int32(q.Any), int32(eprov1.EnableBehavior_ENABLE_BEHAVIOR_ANY)},
		{"routine", int32(scoring.PriorityRoutine), int32(eprov1.AlertPriority_ALERT_PRIORITY_ROUTINE)},
		{"urgent", int32(scoring.PriorityUrgent), int32(eprov1.AlertPriority_ALERT_PRIORITY_URGENT)},
		{"unreviewed", int32(deid.FreeTextUnreviewed), int32(eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_UNREVIEWED)},
		{"not requested", int32(deid.FreeTextNotRequested), int32(eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_NOT_REQUESTED)},
		{"redacted", int32(deid.FreeTextRedacted), int32(eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_REDACTED)},
		{"calendar date", int32(deid.CalendarDate), int32(eprov1.WithheldReason_WITHHELD_REASON_CALENDAR_DATE)},
	}
	for _, o := range others {
		if o.d != o.pb {
			t.Errorf("%s = %d, contract %d", o.name, o.d, o.pb)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	score := 1.5
	rich := &eprov1.Questionnaire{
		Url: "https://example.org/q", Version: "2.0.0", Name: "RICH", Title: "Rich", Language: "en", Description: "d", Copyright: "c",
		Code: &eprov1.Coding{System: "http://loinc.org", Code: "1-8", Display: "x"},
		Items: []*eprov1.QuestionnaireItem{
			{LinkId: "g", Type: eprov1.ItemType_ITEM_TYPE_GROUP, Items: []*eprov1.QuestionnaireItem{
				{LinkId: "n", Text: "N", Type: eprov1.ItemType_ITEM_TYPE_INTEGER, Required: true,
					MinValue: &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: 0}},
					MaxValue: &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: 10}}},
				{LinkId: "c", Text: "C", Type: eprov1.ItemType_ITEM_TYPE_OPEN_CHOICE, Repeats: true, MaxLength: 50,
					EnableBehavior: eprov1.EnableBehavior_ENABLE_BEHAVIOR_ANY,
					AnswerOptions: []*eprov1.AnswerOption{
						{Value: &eprov1.AnswerOption_ValueString{ValueString: "s"}, Score: &score},
						{Value: &eprov1.AnswerOption_ValueInteger{ValueInteger: 3}},
						{Value: &eprov1.AnswerOption_ValueCoding{ValueCoding: &eprov1.Coding{Code: "k"}}},
					},
					EnableWhen: []*eprov1.EnableWhen{
						{QuestionLinkId: "n", Operator: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_GREATER, Answer: &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: 2}}},
						{QuestionLinkId: "n", Operator: eprov1.EnableWhenOperator_ENABLE_WHEN_OPERATOR_EXISTS, Answer: &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueBoolean{ValueBoolean: false}}},
					}},
			}},
		},
		ScoringRules: []*eprov1.ScoringRule{{Name: "total", Title: "T", Method: eprov1.ScoringMethod_SCORING_METHOD_SUM, LinkIds: []string{"n"},
			Bands: []*eprov1.SeverityBand{{Min: 0, Max: 10, Label: "All", Code: &eprov1.Coding{Code: "b"}}}}},
		AlertRules: []*eprov1.AlertRule{
			{Name: "hi", Title: "H", Priority: eprov1.AlertPriority_ALERT_PRIORITY_ROUTINE, PatientMessage: "m",
				Trigger: &eprov1.AlertRule_TotalScore{TotalScore: &eprov1.TotalScoreTrigger{ScoringRuleName: "total", Operator: eprov1.ComparisonOperator_COMPARISON_OPERATOR_GREATER_OR_EQUAL, Threshold: 8}}},
			{Name: "n9", Title: "N", Priority: eprov1.AlertPriority_ALERT_PRIORITY_URGENT,
				Trigger: &eprov1.AlertRule_ItemScore{ItemScore: &eprov1.ItemScoreTrigger{LinkId: "n", Operator: eprov1.ComparisonOperator_COMPARISON_OPERATOR_EQUALS, Threshold: 9}}},
		},
	}
	d := Definition(rich)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if back := Questionnaire(d); !proto.Equal(back, rich) {
		t.Fatalf("round trip differs:\n got %v\nwant %v", back, rich)
	}
	for _, shipped := range instruments.All() {
		pb := Questionnaire(shipped)
		again := Definition(pb)
		if err := again.Validate(); err != nil {
			t.Fatalf("%s: %v", shipped.Canonical(), err)
		}
		if !proto.Equal(Questionnaire(again), pb) {
			t.Fatalf("%s does not round-trip", shipped.Canonical())
		}
	}
}

func TestValues(t *testing.T) {
	at := time.Date(2026, 3, 10, 8, 30, 0, 0, time.UTC)
	values := []q.Value{
		q.Bool(true), q.Dec("37.50"), q.Int(-4), q.DateOf("2026-03-10"), q.Instant(at), q.TimeOf("08:30:00"),
		q.Str("text"), q.URI("https://example.org"), q.Code(q.Coding{System: "s", Code: "c", Display: "d"}),
		q.Quant(q.Amount{Value: "72.5", Unit: "kg", System: "http://unitsofmeasure.org", Code: "kg"}),
	}
	for _, v := range values {
		got := Value(AnswerValue(v))
		if !got.Equal(v) || got.Kind != v.Kind || got.Coding != v.Coding || got.Amount != v.Amount || !got.Instant.Equal(v.Instant) {
			t.Errorf("%v round-trips to %v", v, got)
		}
	}
	if got := Value(&eprov1.AnswerValue{}); got.Kind != q.KindUnset || got.WellFormed() == nil {
		t.Errorf("an unset contract value maps to %v", got)
	}
	answers := Answers([]*eprov1.ItemAnswer{{LinkId: "9", Values: []*eprov1.AnswerValue{AnswerValue(q.Int(1)), AnswerValue(q.Int(2))}}})
	if len(answers) != 1 || answers[0].LinkID != "9" || len(answers[0].Values) != 2 || answers[0].Values[1].Int != 2 {
		t.Errorf("answers = %+v", answers)
	}
}
