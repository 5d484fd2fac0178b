package jobs

import (
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opts           []Option
		cooldown, poll time.Duration
	}{
		{"polling", nil, 5 * time.Millisecond, 50 * time.Millisecond},
		{"listening", []Option{WithListener("postgres://x/y")}, 5 * time.Millisecond, time.Second},
		{"listening, poll set", []Option{WithFetch(time.Millisecond, 20*time.Millisecond), WithListener("postgres://x/y")}, time.Millisecond, 20 * time.Millisecond},
	} {
		c := newConfig(tc.opts)
		if c.cooldown != tc.cooldown || c.poll != tc.poll {
			t.Errorf("%s: cooldown %s poll %s, want %s %s", tc.name, c.cooldown, c.poll, tc.cooldown, tc.poll)
		}
		if c.queues["default"] != 10 {
			t.Errorf("%s: queues %v, want default: 10", tc.name, c.queues)
		}
	}
}
