package attribute

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestFromConnects(t *testing.T) {
	a := New(Options{})
	self := os.Getpid()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skip("no procfs")
	}
	me := strings.TrimSpace(string(comm))
	now := time.Now()
	r := a.FromConnects([]Connect{
		{PID: self, UID: uint32(os.Getuid()), Comm: me, Time: now},
		{PID: 1 << 22, UID: 65534, Comm: "gone-scanner", Time: now}, // no such PID
		{PID: self, UID: uint32(os.Getuid()), Comm: me, Time: now},
		{PID: 1 << 22, UID: 65534, Comm: "gone-scanner", Time: now},
		{PID: 1 << 22, UID: 65534, Comm: "gone-scanner", Time: now},
	})
	if len(r.Exact) != 2 {
		t.Fatalf("exact %+v", r.Exact)
	}
	if g := r.Exact[0]; g.PID != 1<<22 || g.UID != 65534 || g.Command != "gone-scanner (exited)" {
		t.Errorf("most calls first, described from the record: %+v", g)
	}
	if g := r.Exact[1]; g.PID != self || g.Exe == "" || g.Command == "" || strings.Contains(g.Command, "exited") {
		t.Errorf("a live process is read from /proc: %+v", g)
	}
	if !strings.Contains(r.How, "3 of the 5") {
		t.Errorf("how: %q", r.How)
	}
	// A PID now held by another program is not that program.
	r = a.FromConnects([]Connect{{PID: self, UID: 65534, Comm: "not-me", Time: now}})
	if g := r.Exact[0]; g.Command != "not-me (exited)" || g.UID != 65534 {
		t.Errorf("reused PID: %+v", g)
	}
	if r := a.FromConnects(nil); len(r.Exact) != 0 || r.How == "" {
		t.Errorf("empty: %+v", r)
	}
}
