package attribute

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Connect is one connect() call as the kernel reported it when it was made
// (internal/connwatch): the process is named even when the socket has
// long been closed.
type Connect struct {
	PID  int
	UID  uint32
	Comm string // the task's name at the time, as the kernel keeps it (15 bytes)
	Time time.Time
}

// FromConnects names the processes that made connect calls, the one that
// made most first. A process that has exited since — or whose PID now
// belongs to another program — is described from the record alone.
func (a *Attributor) FromConnects(cs []Connect) Result {
	if len(cs) == 0 {
		return Result{How: "no connect() call to the scan's targets was recorded"}
	}
	type tally struct {
		c Connect
		n int
	}
	by := map[int]*tally{}
	for _, c := range cs {
		if t, ok := by[c.PID]; ok {
			t.n++
			continue
		}
		by[c.PID] = &tally{c: c, n: 1}
	}
	ts := make([]*tally, 0, len(by))
	for _, t := range by {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(x, y *tally) int { return y.n - x.n })
	a.mu.Lock()
	defer a.mu.Unlock()
	var r Result
	for _, t := range ts {
		act := a.readActor(t.c.PID)
		if !a.sameTask(t.c.PID, t.c.Comm) {
			act = Actor{PID: t.c.PID, UID: t.c.UID, User: a.userName(t.c.UID),
				Command: formatCommand([]byte(t.c.Comm)) + " (exited)"}
		}
		r.Exact = append(r.Exact, act)
	}
	top := ts[0]
	r.How = fmt.Sprintf("eBPF: %d of the %d connect() calls to the scan's targets recorded were made by PID %d", top.n, len(cs), top.c.PID)
	return r
}

// sameTask reports whether pid is still the program that made the call:
// running, under the same task name (PIDs are reused).
func (a *Attributor) sameTask(pid int, comm string) bool {
	b, err := os.ReadFile(a.proc + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return false
	}
	return strings.TrimRight(string(b), "\n") == comm
}
