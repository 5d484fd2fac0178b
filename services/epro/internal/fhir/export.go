package fhir

import (
	"encoding/json"
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/deid"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

// Extensions written on export. FHIR R4 has no element for a relative study day,
// so a TrialHub extension carries it: on the QuestionnaireResponse in place of
// authored, and on an answer in place of a date or date-time value.
// Withheld values are marked with the core data-absent-reason extension ("masked").
const (
	StudyDayURL         = "https://trialhub.example/fhir/StructureDefinition/study-day"
	AgeTopCodedURL      = "https://trialhub.example/fhir/StructureDefinition/age-top-coded"
	DataAbsentReasonURL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
	// SubjectSystem names subject_uuid identifiers (a URN per RFC 3986, "urn:uuid:...").
	SubjectSystem = "urn:ietf:rfc:3986"
)

// Response is one de-identified response to export.
type Response struct {
	ID               string // response id (UUID)
	Status           string // FHIR QuestionnaireResponse.status: completed, amended, entered-in-error
	SubjectUUID      string
	AuthoredStudyDay int // the study day it was authored on, in the site's time zone
	Answers          []deid.Answer
}

type ext = map[string]any

// ExportResponse writes r as a FHIR R4 QuestionnaireResponse (compact JSON, one
// NDJSON line without its newline): questionnaire is the definition's canonical
// "url|version"; the subject is its subject_uuid only; authored is left out and
// the study-day extension carries the study day instead; items nest as the
// definition's groups do; each answer is a value[x] of its kind, except that a date
// or date-time answer is a study-day extension, a withheld value a
// data-absent-reason "masked" extension, and an age over 89 the value 90 with the
// age-top-coded extension.
func ExportResponse(d *q.Definition, r Response) ([]byte, error) {
	switch r.Status {
	case "in-progress", "completed", "amended", "entered-in-error", "stopped":
	default:
		return nil, fmt.Errorf("export response %s: status %q is not a FHIR QuestionnaireResponse status", r.ID, r.Status)
	}
	byID := map[string]deid.Answer{}
	for _, a := range r.Answers {
		if d.Item(a.LinkID) == nil {
			return nil, fmt.Errorf("export response %s: answer to item %s, which %s does not have", r.ID, a.LinkID, d.Canonical())
		}
		byID[a.LinkID] = a
	}
	doc := map[string]any{
		"resourceType":  "QuestionnaireResponse",
		"id":            r.ID,
		"questionnaire": d.Canonical(),
		"status":        r.Status,
		"subject":       map[string]any{"identifier": map[string]any{"system": SubjectSystem, "value": "urn:uuid:" + r.SubjectUUID}},
		"extension":     []ext{{"url": StudyDayURL, "valueInteger": r.AuthoredStudyDay}},
	}
	if items := responseItems(d.Items, byID); len(items) > 0 {
		doc["item"] = items
	}
	return json.Marshal(doc)
}

func responseItems(items []q.Item, byID map[string]deid.Answer) []map[string]any {
	var out []map[string]any
	for i := range items {
		it := &items[i]
		children := responseItems(it.Items, byID)
		a, answered := byID[it.LinkID]
		if !answered && len(children) == 0 {
			continue
		}
		ri := map[string]any{"linkId": it.LinkID}
		if answered {
			answers := answerValues(a)
			if len(children) > 0 && len(answers) > 0 {
				// Follow-up questions of a question nest under its answer (FHIR qrs-1).
				answers[0]["item"] = children
				children = nil
			}
			ri["answer"] = answers
		}
		if len(children) > 0 {
			ri["item"] = children
		}
		out = append(out, ri)
	}
	return out
}

func answerValues(a deid.Answer) []map[string]any {
	var out []map[string]any
	for _, v := range a.Values {
		ans := map[string]any{}
		switch v.Kind {
		case q.KindBoolean:
			ans["valueBoolean"] = v.Bool
		case q.KindDecimal:
			ans["valueDecimal"] = json.Number(v.Str)
		case q.KindInteger:
			ans["valueInteger"] = v.Int
			if a.AgeCapped {
				ans["extension"] = []ext{{"url": AgeTopCodedURL, "valueBoolean": true}}
			}
		case q.KindTime:
			ans["valueTime"] = v.Str
		case q.KindString:
			ans["valueString"] = v.Str
		case q.KindURI:
			ans["valueUri"] = v.Str
		case q.KindCoding:
			ans["valueCoding"] = coding(v.Coding)
		case q.KindQuantity:
			qv := map[string]any{"value": json.Number(v.Amount.Value)}
			for k, s := range map[string]string{"unit": v.Amount.Unit, "system": v.Amount.System, "code": v.Amount.Code} {
				if s != "" {
					qv[k] = s
				}
			}
			ans["valueQuantity"] = qv
		default:
			// Dates never reach here (deid turns them into StudyDays); a kind
			// without a FHIR value is marked absent rather than dropped.
			ans["extension"] = []ext{{"url": DataAbsentReasonURL, "valueCode": "unsupported"}}
		}
		out = append(out, ans)
	}
	for _, day := range a.StudyDays {
		out = append(out, map[string]any{"extension": []ext{{"url": StudyDayURL, "valueInteger": day}}})
	}
	if a.Withheld != deid.None && a.Withheld != deid.CalendarDate {
		out = append(out, map[string]any{"extension": []ext{{"url": DataAbsentReasonURL, "valueCode": "masked"}}})
	}
	return out
}

func coding(c q.Coding) map[string]any {
	m := map[string]any{"code": c.Code}
	if c.System != "" {
		m["system"] = c.System
	}
	if c.Display != "" {
		m["display"] = c.Display
	}
	return m
}
