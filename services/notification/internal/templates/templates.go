// Package templates is the registry of push message templates: each declares its
// typed parameters and its texts per locale. Nothing free-form reaches a vendor:
// a parameter is a named count or duration the template declares, and a text is
// rendered from the template's own words and those numbers only.
package templates

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kind is the unit of a parameter, as the contract's TemplateParameter oneof names it.
type Kind string

// The parameter kinds.
const (
	Count   Kind = "count"
	Days    Kind = "days"
	Hours   Kind = "hours"
	Minutes Kind = "minutes"
)

// Param is one placeholder a template declares.
type Param struct {
	Name     string
	Kind     Kind
	Required bool
}

// Text is a template's title and body in one language; {name} marks a placeholder.
type Text struct{ Title, Body string }

// Template is one message template.
type Template struct {
	Code   string
	Params []Param
	// Texts by BCP 47 language tag; "en" is required and the fallback.
	Texts map[string]Text
}

// Value is one parameter value of a send.
type Value struct {
	Name  string
	Kind  Kind
	Value int32
}

// Error is a refused parameter: Field names it ("template_code" or
// "template_parameters[<name>]").
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

var registry = map[string]Template{}

func register(t Template) { registry[t.Code] = t }

func init() {
	register(Template{Code: "visit_window_opened", Texts: map[string]Text{
		"en": {"Questionnaire ready", "A questionnaire is ready for you in the app."},
		"de": {"Fragebogen bereit", "In der App wartet ein Fragebogen auf Sie."},
		"fr": {"Questionnaire disponible", "Un questionnaire vous attend dans l'application."},
	}})
	register(Template{Code: "visit_window_closing",
		Params: []Param{{Name: "closes_in", Kind: Hours, Required: true}},
		Texts: map[string]Text{
			"en": {"Questionnaire closes soon", "Your questionnaire closes in {closes_in} hours."},
			"de": {"Fragebogen schliesst bald", "Ihr Fragebogen schliesst in {closes_in} Stunden."},
			"fr": {"Questionnaire bientôt fermé", "Votre questionnaire ferme dans {closes_in} heures."},
		}})
	register(Template{Code: "questionnaires_due",
		Params: []Param{{Name: "due_count", Kind: Count, Required: true}, {Name: "closes_in", Kind: Days}},
		Texts: map[string]Text{
			"en": {"Questionnaires due", "You have {due_count} questionnaires to answer."},
		}})
	register(Template{Code: "epro_alert_routine", Texts: map[string]Text{
		"en": {"Patient alert", "A patient response needs review. Open TrialHub for details."},
		"de": {"Patientenhinweis", "Eine Patientenantwort muss geprüft werden. Details in TrialHub."},
	}})
	register(Template{Code: "epro_alert_urgent", Texts: map[string]Text{
		"en": {"Urgent patient alert", "A patient response needs urgent review. Open TrialHub now."},
		"de": {"Dringender Patientenhinweis", "Eine Patientenantwort muss dringend geprüft werden. Öffnen Sie TrialHub."},
	}})
	register(Template{Code: "safety_alert_phq9_item9", Texts: map[string]Text{
		"en": {"Urgent patient alert", "A patient response needs urgent review. Open TrialHub now."},
	}})
	register(Template{Code: "safety_alert_escalated",
		Params: []Param{{Name: "open_for", Kind: Minutes}},
		Texts: map[string]Text{
			"en": {"Unacknowledged safety alert", "A safety alert has been open for {open_for} minutes. Open TrialHub now."},
		}})
}

// Lookup returns the template with code.
func Lookup(code string) (Template, bool) {
	t, ok := registry[code]
	return t, ok
}

// Codes lists every template code, sorted.
func Codes() []string {
	out := make([]string, 0, len(registry))
	for c := range registry {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Check validates values against the template with code: the code must be known,
// every value declared and of the declared kind, every required one present.
func Check(code string, values []Value) error {
	t, ok := registry[code]
	if !ok {
		return &Error{Field: "template_code", Msg: fmt.Sprintf("unknown template %q; known: %s", code, strings.Join(Codes(), ", "))}
	}
	seen := map[string]bool{}
	for _, v := range values {
		p, ok := t.param(v.Name)
		field := "template_parameters[" + v.Name + "]"
		switch {
		case !ok:
			return &Error{Field: field, Msg: fmt.Sprintf("template %s does not declare parameter %q", code, v.Name)}
		case p.Kind != v.Kind:
			return &Error{Field: field, Msg: fmt.Sprintf("parameter %q of template %s is %s, not %s", v.Name, code, p.Kind, v.Kind)}
		}
		seen[v.Name] = true
	}
	for _, p := range t.Params {
		if p.Required && !seen[p.Name] {
			return &Error{Field: "template_parameters[" + p.Name + "]", Msg: fmt.Sprintf("template %s requires parameter %q (%s)", code, p.Name, p.Kind)}
		}
	}
	return nil
}

func (t Template) param(name string) (Param, bool) {
	for _, p := range t.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Render returns the template's text in locale (its language, then "en"), with
// placeholders filled; a placeholder without a value reads as "?" never as code.
func Render(code, locale string, values []Value) (Text, error) {
	t, ok := registry[code]
	if !ok {
		return Text{}, &Error{Field: "template_code", Msg: fmt.Sprintf("unknown template %q", code)}
	}
	text, ok := t.Texts[locale]
	if !ok {
		lang, _, _ := strings.Cut(strings.ToLower(locale), "-")
		if text, ok = t.Texts[lang]; !ok {
			text = t.Texts["en"]
		}
	}
	fill := func(s string) string {
		for _, p := range t.Params {
			v := "?"
			for _, x := range values {
				if x.Name == p.Name {
					v = strconv.Itoa(int(x.Value))
				}
			}
			s = strings.ReplaceAll(s, "{"+p.Name+"}", v)
		}
		return s
	}
	return Text{Title: fill(text.Title), Body: fill(text.Body)}, nil
}
