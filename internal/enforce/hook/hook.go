// Package hook runs the operator's commands when something is banned or
// unbanned: PortSentry's KILL_RUN_CMD, without its shell.
//
// It owns the hook processes: how their argument vectors and environments
// are built from an Event, how long they may run, and how they (and
// anything they start) are killed. It knows nothing of packets, detection or
// firewalls; the caller says what happened in an Event.
//
// # Arguments, never a shell
//
// A hook is an argument vector, exec'd directly: the program (an absolute
// path: no PATH lookup) and its arguments. Placeholders are replaced inside
// each argument, wherever they appear, as often as they appear and with any
// text around them:
//
//	$TARGET$    the banned address ("192.0.2.7", "2001:db8::7"), or the
//	            prefix in CIDR notation when it is wider ("192.0.2.0/24")
//	$PORT$      the port that triggered the ban; empty when there was none
//	            (a manual ban, an unban)
//	$MODE$      PortSentry's mode: tcp, udp (connect-mode bait), atcp, audp
//	            (advanced), stcp, sudp (stealth: the packet detector)
//	$PROTO$     tcp, udp or empty
//	$REASON$    the reason, in words
//	$DURATION$  the ban's length ("1h0m0s") or "permanent"
//	$ACTION$    ban or unban
//	$HOST$      the resolved name, or the address when there is none
//
// A value is always data inside the one argument it was placed in: it can
// neither add an argument nor reach a shell, since there is none. Values are
// not scanned again, so a reason that contains "$TARGET$" stays literally
// so. Unknown placeholders ("$FOO$") and lone dollar signs ("$$", "$5") are
// left as they are. The only byte changed is NUL, which cannot be part of
// an argument or environment variable on Unix: each NUL in a value is
// replaced by U+FFFD (the Unicode replacement character, "\xef\xbf\xbd"), so
// that the argument keeps its shape and the replacement is visible. Spaces,
// quotes, semicolons, "$(...)", backquotes, newlines, globs and leading
// dashes are passed as they are; a hook that hands a value to a shell or to
// a program that parses options must quote it or end the options ("--")
// itself.
//
// Targets are netip.Prefix values, which cannot carry an IPv6 zone, so
// $TARGET$ never holds one. A name in $HOST$ is whatever the resolver said
// and may contain "%zone" or anything else: it is data like the reason.
//
// Placeholders are not allowed in the program path itself, so no value can
// choose what runs.
//
// # Environment
//
// A hook does not inherit the daemon's environment. It gets
// PATH=/usr/sbin:/usr/bin:/sbin:/bin, LANG=C and one SCANWARDEN_<NAME>
// variable per placeholder with the same value (SCANWARDEN_TARGET,
// SCANWARDEN_PORT, ...), so a script can read them without parsing its
// arguments. It runs in "/", with standard input from /dev/null; the first
// 4 KiB of its standard output and standard error are logged with its exit
// status (at debug level when it succeeded, at warn when it did not).
//
// # Time limits and process groups
//
// Each hook runs in a process group of its own. At its timeout (default
// 10 s) the whole group gets SIGTERM and, 500 ms later, SIGKILL, so a hook
// that started a child that hangs cannot leave it behind. A hook is over
// when its program exits; whatever it started and left running in its
// process group is killed then (a hook that wants to leave something
// running must detach it into a session of its own, with setsid, and is
// then responsible for it).
//
// # Before and after
//
// Hooks with order "before" run, one after the other in the order
// configured, before the ban is put in place (PortSentry's
// KILL_RUN_CMD_FIRST): the caller waits for them in Runner.Before. Hooks
// with order "after" (the default) are queued by Runner.After, which never
// waits: at most 8 run at once and 1024 wait; past that, events are
// dropped, counted and logged once a minute.
package hook

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Actions a hook can be run on.
const (
	ActionBan   = "ban"
	ActionUnban = "unban"
)

// Orders: whether a hook runs before the ban is put in place or after.
const (
	OrderBefore = "before"
	OrderAfter  = "after"
)

// DefaultTimeout is how long a hook may run unless it says otherwise. Ten
// seconds is long for a notification or an API call and short enough that a
// hung before-hook does not hold a ban back for long.
const DefaultTimeout = 10 * time.Second

// Event is what happened, as hooks see it.
type Event struct {
	Action string       // "ban" or "unban"
	Target netip.Prefix // a single address is a /32 or /128
	Port   uint16       // 0: none
	Proto  string       // "tcp", "udp" or ""
	// Mode is PortSentry's: "tcp", "udp" (connect-mode bait), "atcp",
	// "audp" (advanced bait), "stcp", "sudp" (stealth: the packet
	// detector).
	Mode     string
	Reason   string
	Duration time.Duration // 0: permanent
	Host     string        // the resolved name; "" when unresolved
}

// Hook is one command to run.
type Hook struct {
	// Argv is the program, an absolute path, and its arguments, which may
	// hold placeholders.
	Argv []string
	// On lists the actions the hook runs on (default ["ban"]).
	On []string
	// Order is "before" or "after" (the default).
	Order string
	// Timeout bounds the hook's run (default DefaultTimeout).
	Timeout time.Duration
}

// placeholders are the names between dollar signs, in the order of vars.
var placeholders = [...]string{"TARGET", "PORT", "MODE", "PROTO", "REASON", "DURATION", "ACTION", "HOST"}

// vars holds the value of each placeholder for one event.
type vars [len(placeholders)]string

// eventVars renders an event's values, sanitised for use in one argument.
func eventVars(ev Event) vars {
	target := targetString(ev.Target)
	port := ""
	if ev.Port != 0 {
		port = strconv.Itoa(int(ev.Port))
	}
	duration := "permanent"
	if ev.Duration > 0 {
		duration = ev.Duration.String()
	}
	host := ev.Host
	if host == "" {
		host = target
	}
	v := vars{target, port, ev.Mode, ev.Proto, ev.Reason, duration, ev.Action, host}
	for i := range v {
		v[i] = sanitize(v[i])
	}
	return v
}

// targetString is the address alone for a single-address prefix, the CIDR
// otherwise; "" for the zero Prefix.
func targetString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits())
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.Masked().String()
}

// sanitize makes s usable as (part of) one argv entry or environment value:
// NUL, the only byte those cannot hold, becomes U+FFFD.
func sanitize(s string) string {
	if !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func (v *vars) lookup(name string) (string, bool) {
	for i, p := range placeholders {
		if p == name {
			return v[i], true
		}
	}
	return "", false
}

// expand replaces the known placeholders in s, in one pass: a value is
// never scanned again. Anything else, "$FOO$" and "$$" included, is kept.
func expand(s string, v *vars) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '$')
		if j < 0 {
			break
		}
		if val, ok := v.lookup(s[i+1 : i+1+j]); ok {
			b.WriteString(s[:i])
			b.WriteString(val)
			s = s[i+1+j+1:]
			continue
		}
		// Not a placeholder: keep the first '$' and look again from the
		// second, which may open one ("$FOO$TARGET$").
		b.WriteString(s[:i+1])
		s = s[i+1:]
	}
	b.WriteString(s)
	return b.String()
}

// hasPlaceholder reports whether s holds a known placeholder.
func hasPlaceholder(s string) bool {
	var probe vars
	for i := range probe {
		probe[i] = "\x00" // cannot appear in s: it was checked for NUL
	}
	return expand(s, &probe) != s
}

// argv builds the argument vector of a hook for an event.
func argv(h *Hook, v *vars) []string {
	out := make([]string, len(h.Argv))
	for i, a := range h.Argv {
		out[i] = expand(a, v)
	}
	return out
}

// basePath is the fixed PATH of a hook's environment: the system's
// directories only, not /usr/local or the daemon's own PATH.
const basePath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// environ builds a hook's environment.
func environ(v *vars) []string {
	env := make([]string, 0, 2+len(placeholders))
	env = append(env, basePath, "LANG=C")
	for i, p := range placeholders {
		env = append(env, "SCANWARDEN_"+p+"="+v[i])
	}
	return env
}

// check validates a hook and fills in its defaults.
func check(h Hook) (Hook, error) {
	if len(h.Argv) == 0 || h.Argv[0] == "" {
		return h, errors.New("no program: the command is a list [program, arg, ...]")
	}
	prog := h.Argv[0]
	if !filepath.IsAbs(prog) {
		return h, fmt.Errorf("program %q is not an absolute path (hooks are run without PATH lookup and without a shell)", prog)
	}
	for i, a := range h.Argv {
		if strings.Contains(a, "\x00") {
			return h, fmt.Errorf("argument %d contains a NUL byte", i)
		}
	}
	if hasPlaceholder(prog) {
		return h, fmt.Errorf("program %q contains a placeholder: the path of what runs must be fixed", prog)
	}
	if len(h.On) == 0 {
		h.On = []string{ActionBan}
	}
	for _, on := range h.On {
		if on != ActionBan && on != ActionUnban {
			return h, fmt.Errorf("on: %q is not %s or %s", on, ActionBan, ActionUnban)
		}
	}
	switch h.Order {
	case "":
		h.Order = OrderAfter
	case OrderBefore, OrderAfter:
	default:
		return h, fmt.Errorf("order: %q is not %s or %s", h.Order, OrderBefore, OrderAfter)
	}
	switch {
	case h.Timeout < 0:
		return h, fmt.Errorf("negative timeout %v", h.Timeout)
	case h.Timeout == 0:
		h.Timeout = DefaultTimeout
	}
	h.Argv = slices.Clone(h.Argv)
	h.On = slices.Clone(h.On)
	return h, nil
}

func (h *Hook) runsOn(action string) bool { return slices.Contains(h.On, action) }
