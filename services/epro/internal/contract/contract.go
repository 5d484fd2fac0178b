// Package contract maps between the generated trialhub.epro.v1 types and the domain
// packages' own types: questionnaire definitions, answer values and answers, and the
// withheld reasons of de-identified answers. It is the thin layer handlers call at
// the edge; the domain never sees a proto message.
//
// The domain's enums (item types, operators, behaviours, comparisons, priorities,
// withheld reasons) are numbered as the contract's, so they convert by value;
// TestEnumsMatch pins that.
package contract

import (
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/internal/deid"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

// Definition returns the domain definition of a contract questionnaire. Item texts
// are in the questionnaire's language, translations in text_translations.
func Definition(pb *eprov1.Questionnaire) *q.Definition {
	d := &q.Definition{
		URL: pb.GetUrl(), Version: pb.GetVersion(), Name: pb.GetName(), Title: pb.GetTitle(),
		Description: pb.GetDescription(), Code: coding(pb.GetCode()), Language: pb.GetLanguage(), Copyright: pb.GetCopyright(),
	}
	for _, it := range pb.GetItems() {
		d.Items = append(d.Items, item(it, d.Language))
	}
	for _, r := range pb.GetScoringRules() {
		rule := scoring.Rule{Name: r.GetName(), Title: r.GetTitle(), Code: coding(r.GetCode()), LinkIDs: r.GetLinkIds()}
		for _, b := range r.GetBands() {
			rule.Bands = append(rule.Bands, scoring.Band{Min: b.GetMin(), Max: b.GetMax(), Label: b.GetLabel(), Code: coding(b.GetCode())})
		}
		d.Rules = append(d.Rules, rule)
	}
	for _, a := range pb.GetAlertRules() {
		alert := scoring.Alert{Name: a.GetName(), Title: a.GetTitle(), Priority: scoring.Priority(a.GetPriority()), PatientMessage: a.GetPatientMessage()}
		if t := a.GetItemScore(); t != nil {
			alert.LinkID, alert.Op, alert.Threshold = t.GetLinkId(), scoring.Op(t.GetOperator()), t.GetThreshold()
		}
		if t := a.GetTotalScore(); t != nil {
			alert.Total, alert.Op, alert.Threshold = t.GetScoringRuleName(), scoring.Op(t.GetOperator()), t.GetThreshold()
		}
		d.Alerts = append(d.Alerts, alert)
	}
	return d
}

func item(pb *eprov1.QuestionnaireItem, lang string) q.Item {
	it := q.Item{
		LinkID: pb.GetLinkId(), Code: coding(pb.GetCode()), Prefix: pb.GetPrefix(), Type: q.Type(pb.GetType()),
		Required: pb.GetRequired(), Repeats: pb.GetRepeats(), MaxLength: int(pb.GetMaxLength()),
		Behavior: q.Behavior(pb.GetEnableBehavior()),
	}
	if pb.GetText() != "" || len(pb.GetTextTranslations()) > 0 {
		it.Text = q.Localized{}
		if pb.GetText() != "" {
			it.Text[lang] = pb.GetText()
		}
		for _, tr := range pb.GetTextTranslations() {
			it.Text[tr.GetLanguage()] = tr.GetText()
		}
	}
	it.Unit, it.Age = coding(pb.GetUnit()), pb.GetAge()
	for _, o := range pb.GetAnswerOptions() {
		opt := q.Option{Score: o.Score}
		switch v := o.GetValue().(type) {
		case *eprov1.AnswerOption_ValueCoding:
			opt.Value = q.Code(*coding(v.ValueCoding))
		case *eprov1.AnswerOption_ValueInteger:
			opt.Value = q.Int(int64(v.ValueInteger))
		case *eprov1.AnswerOption_ValueString:
			opt.Value = q.Str(v.ValueString)
		}
		it.Options = append(it.Options, opt)
	}
	if pb.GetMinValue() != nil {
		v := Value(pb.GetMinValue())
		it.Min = &v
	}
	if pb.GetMaxValue() != nil {
		v := Value(pb.GetMaxValue())
		it.Max = &v
	}
	for _, c := range pb.GetEnableWhen() {
		it.EnableWhen = append(it.EnableWhen, q.Condition{Question: c.GetQuestionLinkId(), Op: q.Operator(c.GetOperator()), Answer: Value(c.GetAnswer())})
	}
	for _, child := range pb.GetItems() {
		it.Items = append(it.Items, item(child, lang))
	}
	return it
}

// Questionnaire returns the contract form of a definition (without the stored
// fields: id, status, timestamps, author). Texts are in the definition's language,
// the others in text_translations, sorted by language.
func Questionnaire(d *q.Definition) *eprov1.Questionnaire {
	pb := &eprov1.Questionnaire{
		Url: d.URL, Version: d.Version, Name: d.Name, Title: d.Title, Description: d.Description,
		Code: pbCoding(d.Code), Language: d.Language, Copyright: d.Copyright,
	}
	for i := range d.Items {
		pb.Items = append(pb.Items, pbItem(&d.Items[i], d.Language))
	}
	for _, r := range d.Rules {
		pr := &eprov1.ScoringRule{Name: r.Name, Title: r.Title, Code: pbCoding(r.Code), Method: eprov1.ScoringMethod_SCORING_METHOD_SUM, LinkIds: r.LinkIDs}
		for _, b := range r.Bands {
			pr.Bands = append(pr.Bands, &eprov1.SeverityBand{Min: b.Min, Max: b.Max, Label: b.Label, Code: pbCoding(b.Code)})
		}
		pb.ScoringRules = append(pb.ScoringRules, pr)
	}
	for _, a := range d.Alerts {
		pa := &eprov1.AlertRule{Name: a.Name, Title: a.Title, Priority: eprov1.AlertPriority(a.Priority), PatientMessage: a.PatientMessage}
		if a.LinkID != "" {
			pa.Trigger = &eprov1.AlertRule_ItemScore{ItemScore: &eprov1.ItemScoreTrigger{LinkId: a.LinkID, Operator: eprov1.ComparisonOperator(a.Op), Threshold: a.Threshold}}
		} else {
			pa.Trigger = &eprov1.AlertRule_TotalScore{TotalScore: &eprov1.TotalScoreTrigger{ScoringRuleName: a.Total, Operator: eprov1.ComparisonOperator(a.Op), Threshold: a.Threshold}}
		}
		pb.AlertRules = append(pb.AlertRules, pa)
	}
	return pb
}

func pbItem(it *q.Item, lang string) *eprov1.QuestionnaireItem {
	pb := &eprov1.QuestionnaireItem{
		LinkId: it.LinkID, Code: pbCoding(it.Code), Prefix: it.Prefix, Text: it.Text[lang], Type: eprov1.ItemType(it.Type),
		Required: it.Required, Repeats: it.Repeats, MaxLength: int32(it.MaxLength), EnableBehavior: eprov1.EnableBehavior(it.Behavior),
		Unit: pbCoding(it.Unit), Age: it.Age,
	}
	for _, tag := range slices.Sorted(maps.Keys(it.Text)) {
		if tag != lang {
			pb.TextTranslations = append(pb.TextTranslations, &eprov1.LocalizedText{Language: tag, Text: it.Text[tag]})
		}
	}
	for _, o := range it.Options {
		po := &eprov1.AnswerOption{Score: o.Score}
		switch o.Value.Kind {
		case q.KindCoding:
			po.Value = &eprov1.AnswerOption_ValueCoding{ValueCoding: pbCoding(&o.Value.Coding)}
		case q.KindInteger:
			po.Value = &eprov1.AnswerOption_ValueInteger{ValueInteger: int32(o.Value.Int)}
		case q.KindString:
			po.Value = &eprov1.AnswerOption_ValueString{ValueString: o.Value.Str}
		}
		pb.AnswerOptions = append(pb.AnswerOptions, po)
	}
	if it.Min != nil {
		pb.MinValue = AnswerValue(*it.Min)
	}
	if it.Max != nil {
		pb.MaxValue = AnswerValue(*it.Max)
	}
	for _, c := range it.EnableWhen {
		pb.EnableWhen = append(pb.EnableWhen, &eprov1.EnableWhen{QuestionLinkId: c.Question, Operator: eprov1.EnableWhenOperator(c.Op), Answer: AnswerValue(c.Answer)})
	}
	for i := range it.Items {
		pb.Items = append(pb.Items, pbItem(&it.Items[i], lang))
	}
	return pb
}

func coding(c *eprov1.Coding) *q.Coding {
	if c == nil {
		return nil
	}
	return &q.Coding{System: c.GetSystem(), Code: c.GetCode(), Display: c.GetDisplay()}
}

func pbCoding(c *q.Coding) *eprov1.Coding {
	if c == nil {
		return nil
	}
	return &eprov1.Coding{System: c.System, Code: c.Code, Display: c.Display}
}

// Value returns the domain value of a contract answer value; an unset value is
// KindUnset, which every check refuses.
func Value(pb *eprov1.AnswerValue) q.Value {
	switch v := pb.GetValue().(type) {
	case *eprov1.AnswerValue_ValueBoolean:
		return q.Bool(v.ValueBoolean)
	case *eprov1.AnswerValue_ValueDecimal:
		return q.Dec(v.ValueDecimal)
	case *eprov1.AnswerValue_ValueInteger:
		return q.Int(int64(v.ValueInteger))
	case *eprov1.AnswerValue_ValueDate:
		return q.DateOf(v.ValueDate)
	case *eprov1.AnswerValue_ValueDateTime:
		return q.Instant(v.ValueDateTime.AsTime())
	case *eprov1.AnswerValue_ValueTime:
		return q.TimeOf(v.ValueTime)
	case *eprov1.AnswerValue_ValueString:
		return q.Str(v.ValueString)
	case *eprov1.AnswerValue_ValueUri:
		return q.URI(v.ValueUri)
	case *eprov1.AnswerValue_ValueCoding:
		return q.Code(*coding(v.ValueCoding))
	case *eprov1.AnswerValue_ValueQuantity:
		a := v.ValueQuantity
		return q.Quant(q.Amount{Value: a.GetValue(), Unit: a.GetUnit(), System: a.GetSystem(), Code: a.GetCode()})
	}
	return q.Value{}
}

// AnswerValue returns the contract form of a domain value; KindUnset gives an
// AnswerValue with no variant set.
func AnswerValue(v q.Value) *eprov1.AnswerValue {
	pb := &eprov1.AnswerValue{}
	switch v.Kind {
	case q.KindBoolean:
		pb.Value = &eprov1.AnswerValue_ValueBoolean{ValueBoolean: v.Bool}
	case q.KindDecimal:
		pb.Value = &eprov1.AnswerValue_ValueDecimal{ValueDecimal: v.Str}
	case q.KindInteger:
		pb.Value = &eprov1.AnswerValue_ValueInteger{ValueInteger: int32(v.Int)}
	case q.KindDate:
		pb.Value = &eprov1.AnswerValue_ValueDate{ValueDate: v.Str}
	case q.KindDateTime:
		pb.Value = &eprov1.AnswerValue_ValueDateTime{ValueDateTime: timestamppb.New(v.Instant.In(time.UTC))}
	case q.KindTime:
		pb.Value = &eprov1.AnswerValue_ValueTime{ValueTime: v.Str}
	case q.KindString:
		pb.Value = &eprov1.AnswerValue_ValueString{ValueString: v.Str}
	case q.KindURI:
		pb.Value = &eprov1.AnswerValue_ValueUri{ValueUri: v.Str}
	case q.KindCoding:
		pb.Value = &eprov1.AnswerValue_ValueCoding{ValueCoding: pbCoding(&v.Coding)}
	case q.KindQuantity:
		a := v.Amount
		pb.Value = &eprov1.AnswerValue_ValueQuantity{ValueQuantity: &eprov1.Quantity{Value: a.Value, Unit: a.Unit, System: a.System, Code: a.Code}}
	}
	return pb
}

// Answers returns the domain answers of a submission's item answers.
func Answers(pb []*eprov1.ItemAnswer) []q.Answer {
	out := make([]q.Answer, 0, len(pb))
	for _, a := range pb {
		ans := q.Answer{LinkID: a.GetLinkId()}
		for _, v := range a.GetValues() {
			ans.Values = append(ans.Values, Value(v))
		}
		out = append(out, ans)
	}
	return out
}

// WithheldReason returns the contract's reason for a de-identified answer's
// withheld values.
func WithheldReason(w deid.Withheld) eprov1.WithheldReason { return eprov1.WithheldReason(w) }
