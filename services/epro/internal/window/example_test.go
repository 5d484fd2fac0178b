package window_test

import (
	"fmt"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/window"
)

func ExampleWindow_Decide() {
	tokyo := time.FixedZone("JST", 9*3600)
	plan := window.Plan{TargetDay: 8, Before: 1, After: 1, Anchor: time.Date(2026, 3, 10, 9, 0, 0, 0, tokyo), Location: tokyo}
	w, _ := plan.Window()
	fmt.Println(w.Opens.Format(time.RFC3339), w.Closes.Format(time.RFC3339))
	authored := time.Date(2026, 3, 18, 23, 30, 0, 0, tokyo) // the last evening of the window
	fmt.Println(w.Decide(authored, authored.Add(time.Minute), 24*time.Hour))
	fmt.Println(w.Decide(authored, authored.Add(3*time.Hour), 24*time.Hour)) // the phone was offline
	fmt.Println(w.Decide(authored, authored.Add(48*time.Hour), 24*time.Hour))
	// Output:
	// 2026-03-16T00:00:00+09:00 2026-03-19T00:00:00+09:00
	// on time
	// late
	// closed
}
