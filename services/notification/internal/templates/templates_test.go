package templates

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, code string
		values     []Value
		field      string
	}{
		{"ok", "visit_window_closing", []Value{{"closes_in", Hours, 24}}, ""},
		{"no params", "epro_alert_urgent", nil, ""},
		{"unknown template", "nope", nil, "template_code"},
		{"undeclared", "epro_alert_urgent", []Value{{"score", Count, 3}}, "template_parameters[score]"},
		{"wrong kind", "visit_window_closing", []Value{{"closes_in", Days, 1}}, "template_parameters[closes_in]"},
		{"missing required", "visit_window_closing", nil, "template_parameters[closes_in]"},
		{"optional absent", "questionnaires_due", []Value{{"due_count", Count, 2}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.code, tc.values)
			var e *Error
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tc.field != "" && !errors.As(err, &e):
				t.Fatalf("Check = %v, want an *Error on %s", err, tc.field)
			case tc.field != "" && e.Field != tc.field:
				t.Fatalf("field = %q, want %q", e.Field, tc.field)
			}
		})
	}
}

func TestRenderLocaleFallback(t *testing.T) {
	for locale, want := range map[string]string{
		"en":    "Your questionnaire closes in 5 hours.",
		"de-CH": "Ihr Fragebogen schliesst in 5 Stunden.",
		"ja":    "Your questionnaire closes in 5 hours.",
	} {
		got, err := Render("visit_window_closing", locale, []Value{{"closes_in", Hours, 5}})
		if err != nil || got.Body != want {
			t.Errorf("Render(%s) = %q, %v; want %q", locale, got.Body, err, want)
		}
	}
}
