// Package instruments holds the questionnaires the platform ships: the PHQ-9 and
// the GAD-7, written from the published instruments with their exact wording, LOINC
// codes, canonical URLs, versions, scoring rules and alerts.
//
// Source: the PHQ-9 and GAD-7 forms of the Patient Health Questionnaire (PHQ)
// Screeners, https://www.phqscreeners.com/ (Kroenke, Spitzer, Williams 2001, J Gen
// Intern Med 16:606-613; Spitzer, Kroenke, Williams, Löwe 2006, Arch Intern Med
// 166:1092-1097). Both are free to use: "No permission required to reproduce,
// translate, display or distribute." LOINC codes from https://loinc.org (panels
// 44249-1 and 69737-5).
package instruments

import (
	"fmt"

	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

// LOINC is the code system of the instruments' codes.
const LOINC = "http://loinc.org"

// Canonical URLs and versions of the shipped instruments. A shipped version never
// changes: a correction is a new version.
const (
	PHQ9URL     = "https://trialhub.example/fhir/Questionnaire/phq-9"
	PHQ9Version = "1.0.0"
	GAD7URL     = "https://trialhub.example/fhir/Questionnaire/gad-7"
	GAD7Version = "1.0.0"
)

// Copyright is the notice printed on both published forms.
const Copyright = "Developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and colleagues, " +
	"with an educational grant from Pfizer Inc. No permission required to reproduce, translate, display or distribute."

func loinc(code, display string) *q.Coding {
	return &q.Coding{System: LOINC, Code: code, Display: display}
}

// frequency is the answer scale of both instruments, scored 0-3, with its LOINC
// answer codes.
func frequency() []q.Option {
	scale := []struct{ code, text string }{
		{"LA6568-5", "Not at all"},
		{"LA6569-3", "Several days"},
		{"LA6570-1", "More than half the days"},
		{"LA6571-9", "Nearly every day"},
	}
	opts := make([]q.Option, len(scale))
	for i, s := range scale {
		score := float64(i)
		opts[i] = q.Option{Value: q.Code(*loinc(s.code, s.text)), Score: &score}
	}
	return opts
}

type question struct{ code, text string }

// build makes a definition of a stem (a display item "stem") followed by required
// frequency items "1".."n", summed by a rule "total" with the given bands.
func build(url, version, name, title string, code *q.Coding, stem string, items []question, total *q.Coding, bands []scoring.Band) *q.Definition {
	d := &q.Definition{URL: url, Version: version, Name: name, Title: title, Code: code, Language: "en", Copyright: Copyright}
	d.Items = append(d.Items, q.Item{LinkID: "stem", Type: q.Display, Text: q.Localized{"en": stem}})
	rule := scoring.Rule{Name: "total", Title: title + " total score", Code: total, Bands: bands}
	for i, it := range items {
		id := fmt.Sprint(i + 1)
		d.Items = append(d.Items, q.Item{
			LinkID: id, Prefix: id + ".", Code: loinc(it.code, it.text), Text: q.Localized{"en": it.text},
			Type: q.Choice, Required: true, Options: frequency(),
		})
		rule.LinkIDs = append(rule.LinkIDs, id)
	}
	d.Rules = []scoring.Rule{rule}
	return d
}

// PHQ9 returns the Patient Health Questionnaire-9: nine items scored 0-3, total
// 0-27 (LOINC 44261-6) in five bands, and an urgent alert when item 9 (thoughts of
// self-harm, LOINC 44260-8) scores above 0. Each call returns a fresh copy.
func PHQ9() *q.Definition {
	d := build(PHQ9URL, PHQ9Version, "PHQ9", "Patient Health Questionnaire-9 (PHQ-9)",
		loinc("44249-1", "PHQ-9 quick depression assessment panel"),
		"Over the last 2 weeks, how often have you been bothered by any of the following problems?",
		[]question{
			{"44250-9", "Little interest or pleasure in doing things"},
			{"44255-8", "Feeling down, depressed, or hopeless"},
			{"44259-0", "Trouble falling or staying asleep, or sleeping too much"},
			{"44254-1", "Feeling tired or having little energy"},
			{"44251-7", "Poor appetite or overeating"},
			{"44258-2", "Feeling bad about yourself — or that you are a failure or have let yourself or your family down"},
			{"44252-5", "Trouble concentrating on things, such as reading the newspaper or watching television"},
			{"44253-3", "Moving or speaking so slowly that other people could have noticed? Or the opposite — being so fidgety or restless that you have been moving around a lot more than usual"},
			{"44260-8", "Thoughts that you would be better off dead or of hurting yourself in some way"},
		},
		loinc("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
		[]scoring.Band{
			{Min: 0, Max: 4, Label: "Minimal"},
			{Min: 5, Max: 9, Label: "Mild"},
			{Min: 10, Max: 14, Label: "Moderate"},
			{Min: 15, Max: 19, Label: "Moderately severe"},
			{Min: 20, Max: 27, Label: "Severe"},
		})
	d.Alerts = []scoring.Alert{{
		Name: "item9_self_harm", Title: "PHQ-9 item 9 positive: thoughts of self-harm",
		LinkID: "9", Op: scoring.OpGreater, Threshold: 0, Priority: scoring.PriorityUrgent,
		PatientMessage: "If you are thinking about hurting yourself, please contact your study site now, or call your local emergency number.",
	}}
	return d
}

// GAD7 returns the Generalized Anxiety Disorder 7-item scale: seven items scored
// 0-3, total 0-21 (LOINC 70274-6) in four bands. Each call returns a fresh copy.
func GAD7() *q.Definition {
	return build(GAD7URL, GAD7Version, "GAD7", "Generalized Anxiety Disorder 7-item (GAD-7)",
		loinc("69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
		"Over the last 2 weeks, how often have you been bothered by the following problems?",
		[]question{
			{"69725-0", "Feeling nervous, anxious, or on edge"},
			{"68509-9", "Not being able to stop or control worrying"},
			{"69733-4", "Worrying too much about different things"},
			{"69734-2", "Trouble relaxing"},
			{"69735-9", "Being so restless that it is hard to sit still"},
			{"69689-8", "Becoming easily annoyed or irritable"},
			{"69736-7", "Feeling afraid, as if something awful might happen"},
		},
		loinc("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
		[]scoring.Band{
			{Min: 0, Max: 4, Label: "Minimal"},
			{Min: 5, Max: 9, Label: "Mild"},
			{Min: 10, Max: 14, Label: "Moderate"},
			{Min: 15, Max: 21, Label: "Severe"},
		})
}

// All returns every shipped instrument, for seeding.
func All() []*q.Definition { return []*q.Definition{PHQ9(), GAD7()} }
