package jobs

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
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

// valueHook implements rivertype.HookInsertBegin only through a pointer
// (river.HookDefaults' IsHook has a pointer receiver).
type valueHook struct{ river.HookDefaults }

func (valueHook) IsPlugin() bool { return true }

func TestNewRefusesAPluginRiverWouldIgnore(t *testing.T) {
	d, err := db.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "svc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = New(d, nil, WithPlugins(valueHook{}))
	if err == nil || !strings.Contains(err.Error(), "neither a River hook nor middleware") {
		t.Fatalf("New with a value plugin = %v, want it refused", err)
	}
	q, err := New(d, nil, WithPlugins(&valueHook{}))
	if err != nil {
		t.Fatalf("New with a pointer plugin = %v", err)
	}
	if err := q.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
