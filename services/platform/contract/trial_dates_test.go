package contract_test

import (
	"testing"

	"buf.build/go/protovalidate"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
)

// The trial contract's calendar-date rule refuses days that do not exist in
// their month, with leap years after the Gregorian rule, and accepts the rest.
func TestTrialCalendarDatesExist(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	for date, ok := range map[string]bool{
		"2025-01-31": true, "2025-02-28": true, "2025-02-29": false, "2025-02-31": false,
		"2024-02-29": true, "2024-02-30": false, "2000-02-29": true, "2100-02-29": false,
		"2025-04-30": true, "2025-04-31": false, "2025-06-31": false, "2025-09-31": false,
		"2025-11-31": false, "2025-12-31": true, "2025-07-31": true, "2025-13-01": false,
	} {
		m := exampleOf[*trialv1.EnrollSubjectRequest](t, "")
		m.EnrollmentDate = date
		if err := v.Validate(m); (err == nil) != ok {
			t.Errorf("enrollment_date %s: valid = %v, want %v (%v)", date, err == nil, ok, err)
		}
	}
}
