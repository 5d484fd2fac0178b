package deid_test

import (
	"fmt"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/deid"
)

func ExampleStudyDay() {
	enrolled := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, d := range []string{"2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"} {
		t, _ := time.Parse(time.DateOnly, d)
		fmt.Print(deid.StudyDay(enrolled, t), " ")
	}
	// Output: -2 -1 1 2
}

func ExampleCSVCell() {
	fmt.Println(deid.CSVCell("=1+1"), deid.CSVCell("-7"), deid.CSVCell("fine"))
	// Output: '=1+1 -7 fine
}
