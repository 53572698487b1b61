package hook

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run real hooks: the test binary itself, re-executed with
// helperArg as its first argument (the environment cannot carry the usual
// marker variable, since the Runner replaces it). TestMain then plays the
// hook named by the second argument instead of running the tests.

const helperArg = "swhook-helper"

// record is what the "record" helper writes: what it was given.
type record struct {
	Argv  [][]byte `json:"argv"` // bytes: JSON strings would mangle invalid UTF-8
	Env   [][]byte `json:"env"`
	Cwd   string   `json:"cwd"`
	Stdin string   `json:"stdin"`
	Pid   int      `json:"pid"`
	Pgid  int      `json:"pgid"`
}

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(helper(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	switch mode {
	case "record": // record FILE ARGS...: write what we got as JSON
		cwd, _ := os.Getwd()
		in, _ := io.ReadAll(os.Stdin)
		pgid, _ := syscall.Getpgid(0)
		b, _ := json.Marshal(record{toBytes(os.Args), toBytes(os.Environ()), cwd, string(in), os.Getpid(), pgid})
		if err := os.WriteFile(args[0], b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "mark": // mark DURATION FILE: sleep, then create FILE
		d, _ := time.ParseDuration(args[0])
		time.Sleep(d)
		os.WriteFile(args[1], nil, 0o600)
		return 0
	case "fork-sleep": // fork-sleep PIDFILE: start a grandchild that sleeps, then hang
		c := exec.Command("/bin/sleep", "60")
		if err := c.Start(); err != nil {
			return 1
		}
		os.WriteFile(args[0], []byte(strconv.Itoa(c.Process.Pid)), 0o600)
		time.Sleep(time.Minute)
		return 0
	case "ignore-term": // ignore-term READYFILE: survive SIGTERM, hang
		signal.Ignore(syscall.SIGTERM)
		os.WriteFile(args[0], nil, 0o600)
		time.Sleep(time.Minute)
		return 0
	case "spew": // spew N CODE: N bytes to stdout and stderr, exit CODE
		n, _ := strconv.Atoi(args[0])
		code, _ := strconv.Atoi(args[1])
		os.Stdout.WriteString(strings.Repeat("o", n))
		os.Stderr.WriteString(strings.Repeat("e", n))
		return code
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func toStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// self is the test binary's absolute path.
func self(t testing.TB) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helperHook returns a hook that runs the helper in the given mode.
func helperHook(t testing.TB, mode string, args ...string) Hook {
	return Hook{Argv: append([]string{self(t), helperArg, mode}, args...)}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// waitDead waits up to two seconds for pid to be gone or a zombie.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
