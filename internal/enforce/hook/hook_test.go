package hook

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var sample = Event{
	Action:   "ban",
	Target:   netip.MustParsePrefix("192.0.2.7/32"),
	Port:     31337,
	Proto:    "tcp",
	Mode:     "stcp",
	Reason:   "Vertical SYN scan of 1000 ports",
	Duration: time.Hour,
	Host:     "scanner.example",
}

func TestExpand(t *testing.T) {
	v := eventVars(sample)
	for _, tc := range []struct{ in, want string }{
		{"$TARGET$", "192.0.2.7"},
		{"$PORT$", "31337"},
		{"$MODE$", "stcp"},
		{"$PROTO$", "tcp"},
		{"$REASON$", "Vertical SYN scan of 1000 ports"},
		{"$DURATION$", "1h0m0s"},
		{"$ACTION$", "ban"},
		{"$HOST$", "scanner.example"},
		{"--host=$TARGET$", "--host=192.0.2.7"},
		{"$TARGET$:$PORT$/$PROTO$", "192.0.2.7:31337/tcp"},
		{"[$ACTION$ $TARGET$ for $DURATION$]", "[ban 192.0.2.7 for 1h0m0s]"},
		{"$TARGET$$TARGET$", "192.0.2.7192.0.2.7"},
		{"$FOO$", "$FOO$"},
		{"$FOO$TARGET$", "$FOO192.0.2.7"},
		{"$target$", "$target$"},
		{"$$", "$$"},
		{"$$TARGET$", "$192.0.2.7"},
		{"$", "$"},
		{"$TARGET", "$TARGET"},
		{"cost: $5", "cost: $5"},
		{"", ""},
		{"no placeholder", "no placeholder"},
	} {
		if got := expand(tc.in, &v); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEventVars(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		arg  string
		want string
	}{
		{"v6 address", Event{Target: netip.MustParsePrefix("2001:db8::7/128")}, "$TARGET$", "2001:db8::7"},
		{"v4 prefix", Event{Target: netip.MustParsePrefix("192.0.2.0/24")}, "$TARGET$", "192.0.2.0/24"},
		{"unmasked prefix", Event{Target: netip.MustParsePrefix("192.0.2.9/24")}, "$TARGET$", "192.0.2.0/24"},
		{"v6 prefix", Event{Target: netip.MustParsePrefix("2001:db8::/32")}, "$TARGET$", "2001:db8::/32"},
		{"no target", Event{}, "[$TARGET$]", "[]"},
		{"permanent", Event{}, "$DURATION$", "permanent"},
		{"90s", Event{Duration: 90 * time.Second}, "$DURATION$", "1m30s"},
		{"no port", Event{}, "[$PORT$]", "[]"},
		{"unresolved host", Event{Target: netip.MustParsePrefix("2001:db8::7/128")}, "$HOST$", "2001:db8::7"},
		{"host with zone is data", Event{Host: "fe80::1%eth0"}, "$HOST$", "fe80::1%eth0"},
		{"NUL replaced", Event{Reason: "a\x00b"}, "$REASON$", "a\uFFFDb"},
		{"value not rescanned", Event{Reason: "$TARGET$", Target: netip.MustParsePrefix("192.0.2.7/32")}, "$REASON$", "$TARGET$"},
	} {
		v := eventVars(tc.ev)
		if got := expand(tc.arg, &v); got != tc.want {
			t.Errorf("%s: %q = %q, want %q", tc.name, tc.arg, got, tc.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	v := eventVars(sample)
	got := strings.Join(environ(&v), "\n")
	want := strings.Join([]string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C",
		"SCANWARDEN_TARGET=192.0.2.7",
		"SCANWARDEN_PORT=31337",
		"SCANWARDEN_MODE=stcp",
		"SCANWARDEN_PROTO=tcp",
		"SCANWARDEN_REASON=Vertical SYN scan of 1000 ports",
		"SCANWARDEN_DURATION=1h0m0s",
		"SCANWARDEN_ACTION=ban",
		"SCANWARDEN_HOST=scanner.example",
	}, "\n")
	if got != want {
		t.Errorf("environment:\n%s\nwant:\n%s", got, want)
	}
}

func TestNewRunnerRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Hook
		want string
	}{
		{"empty argv", Hook{}, "no program"},
		{"empty program", Hook{Argv: []string{""}}, "no program"},
		{"relative path", Hook{Argv: []string{"notify", "$TARGET$"}}, "not an absolute path"},
		{"dot path", Hook{Argv: []string{"./notify"}}, "not an absolute path"},
		{"placeholder in program", Hook{Argv: []string{"/opt/hooks/$HOST$"}}, "placeholder"},
		{"NUL in argument", Hook{Argv: []string{"/bin/true", "a\x00b"}}, "NUL"},
		{"bad action", Hook{Argv: []string{"/bin/true"}, On: []string{"allow"}}, "on:"},
		{"bad order", Hook{Argv: []string{"/bin/true"}, Order: "first"}, "order:"},
		{"negative timeout", Hook{Argv: []string{"/bin/true"}, Timeout: -time.Second}, "timeout"},
	} {
		_, err := NewRunner([]Hook{tc.h}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	h, err := check(Hook{Argv: []string{"/bin/true", "$TARGET$"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.On) != 1 || h.On[0] != ActionBan || h.Order != OrderAfter || h.Timeout != DefaultTimeout {
		t.Errorf("defaults: %+v", h)
	}
	// "$FOO$" in the program is not a placeholder, so it is allowed.
	if _, err := check(Hook{Argv: []string{"/opt/$FOO$/x"}}); err != nil {
		t.Errorf("literal dollars in the program: %v", err)
	}
}
