package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The outbound-monitoring overhead benchmark: a monitored host opens and
// closes 10 000 successful TCP connections a second over a veth pair, as a
// busy proxy or API client does, and the whole machine's CPU (from
// /proc/stat, so the kernel's softirq work for the packet capture counts
// too) is compared with and without the daemon.
//
//	go test -run '^$' -bench OutboundOverhead -benchtime 1x -count 6 ./test/e2e/ | tee o.txt
//	benchstat -col /monitor o.txt
//
// Each iteration is one fixed window (overheadWindow, SWD_BENCH_WINDOW
// overrides it); the sub-benchmarks alternate within each count.

// overheadRate is the connection rate of the target: 10 000 new
// connections a second, a busy reverse proxy's or API gateway's.
const overheadRate = 10000

// overheadWindow is how long each measurement lasts.
const overheadWindow = 10 * time.Second

// userHZ is the unit of /proc/stat and /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture we run on; getconf CLK_TCK).
const userHZ = 100

// benchRoles are the load generator and its server.
var benchRoles = map[string]func(args []string) error{
	"accept-server": acceptServer,
	"loadgen":       loadgen,
}

// benchLab is two namespaces joined by one veth pair: the monitored host
// (10.88.N.2) and its servers (10.88.N.1, with 10.88.N.10-25 and 16
// listening ports on each: 256 destinations).
type benchLab struct {
	b            *testing.B
	id           string
	n            int
	target, scan string
	bin          string
	dir          string
	dsts         []string
	server       int // the accept server's PID
	daemon       *exec.Cmd
	log          *syncBuffer
}

func benchRun(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// benchBinary builds scanwarden once per run, as binary does for tests;
// SWD_BENCH_BIN names a binary to measure instead (a build pinned for a
// series of runs).
func benchBinary(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("SWD_BENCH_BIN"); bin != "" {
		return bin
	}
	return binary(b)
}

func newBenchLab(b *testing.B) *benchLab {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces and raw sockets")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s", tool)
		}
	}
	labSeqMu.Lock()
	labSeq++
	n := 100 + labSeq
	labSeqMu.Unlock()
	id := fmt.Sprintf("%d%d", os.Getpid()%1000, labSeq)
	l := &benchLab{b: b, id: id, n: n, bin: benchBinary(b), dir: b.TempDir(), log: &syncBuffer{}}
	l.target, l.scan = "swd-"+id+"-btarget", "swd-"+id+"-bscan"
	b.Cleanup(l.destroy)
	for _, ns := range []string{l.target, l.scan} {
		benchRun(b, "ip", "netns", "add", ns)
		benchRun(b, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	host, peer := "swd"+id+"ba", "swd"+id+"bb"
	benchRun(b, "ip", "link", "add", host, "netns", l.target, "type", "veth", "peer", "name", peer, "netns", l.scan)
	var batch strings.Builder
	for i := 10; i < 26; i++ {
		fmt.Fprintf(&batch, "addr add 10.88.%d.%d/24 dev %s\n", n, i, peer)
		for port := 8000; port < 8016; port++ {
			l.dsts = append(l.dsts, fmt.Sprintf("10.88.%d.%d:%d", n, i, port))
		}
	}
	fmt.Fprintf(&batch, "addr add 10.88.%d.1/24 dev %s\nlink set %s up\n", n, peer, peer)
	file := filepath.Join(l.dir, "scan.batch")
	os.WriteFile(file, []byte(batch.String()), 0o644)
	benchRun(b, "ip", "-n", l.scan, "-batch", file)
	benchRun(b, "ip", "-n", l.target, "addr", "add", fmt.Sprintf("10.88.%d.2/24", n), "dev", host)
	benchRun(b, "ip", "-n", l.target, "link", "set", host, "up")

	name, argv := helperCmd(l.scan, "accept-server", "-ports", "8000-8015")
	srv := exec.Command("ip", append([]string{"netns", "exec", l.scan, name}, argv...)...)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	l.server = srv.Process.Pid // ip netns exec and env exec: the server's own
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "exec", l.scan, "ss", "-Hltn", "sport", "= :8015").Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the accept server did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

func (l *benchLab) destroy() {
	l.stopDaemon()
	for _, ns := range []string{l.target, l.scan} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// config writes a daemon configuration: the built-in defaults but for
// where state and the socket live, plus extra.
func (l *benchLab) config(name, extra string) string {
	l.b.Helper()
	path := filepath.Join(l.dir, name+".yaml")
	base := fmt.Sprintf("state_dir: %s\nsocket: %s\nsocket_group: \"\"\n", filepath.Join(l.dir, "state-"+name), filepath.Join(l.dir, "sw.sock"))
	os.MkdirAll(filepath.Join(l.dir, "state-"+name), 0o755)
	if err := os.WriteFile(path, []byte(base+extra), 0o644); err != nil {
		l.b.Fatal(err)
	}
	return path
}

// configAccepted says whether `scanwarden config check` takes extra.
func (l *benchLab) configAccepted(extra string) (bool, string) {
	out, err := exec.Command(l.bin, "config", "check", l.config("check", extra)).CombinedOutput()
	return err == nil, string(out)
}

// startDaemon runs the daemon in the target namespace and waits until its
// socket answers and it has had a second to settle.
func (l *benchLab) startDaemon(cfg string) int {
	l.b.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.target, l.bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = l.log, l.log
	if err := cmd.Start(); err != nil {
		l.b.Fatal(err)
	}
	l.daemon = cmd
	sock := filepath.Join(l.dir, "sw.sock")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if exec.Command(l.bin, "status", "--socket", sock).Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			l.b.Fatalf("daemon did not come up:\n%s", tail(l.log.String(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return cmd.Process.Pid // ip netns exec execs: this is the daemon
}

// stopDaemon stops the daemon and removes its table, so that the next
// monitor=off window runs without its rules (and without the connection
// tracking they turn on).
func (l *benchLab) stopDaemon() {
	if l.daemon == nil {
		return
	}
	stopProcess(l.daemon, syscall.SIGINT)
	l.daemon = nil
	exec.Command("ip", "netns", "exec", l.target, "nft", "delete", "table", "inet", "scanwarden").Run()
}

// loadResult is what the load generator measured over its window.
type loadResult struct {
	OK, Failed, Skipped int64
	Seconds             float64
	Busy, Total         uint64 // /proc/stat, all CPUs, USER_HZ ticks
	Daemon              uint64 // the daemon's utime+stime, ticks
	// Other is the CPU of user-space processes outside the lab (other
	// people's builds and tests on a shared machine), in ticks: those
	// alive at the end of the window, less what they had at its start.
	Other uint64
}

// window runs the load generator in the target namespace for d.
func (l *benchLab) window(d time.Duration, daemonPID int) loadResult {
	l.b.Helper()
	name, argv := helperCmd(l.target, "loadgen", "-rate", strconv.Itoa(overheadRate), "-dur", d.String(),
		"-daemon-pid", strconv.Itoa(daemonPID), "-server-pid", strconv.Itoa(l.server), strings.Join(l.dsts, ","))
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.target, name}, argv...)...).Output()
	if err != nil {
		l.b.Fatalf("loadgen: %v\n%s", err, out)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		l.b.Fatalf("loadgen output %q: %v", out, err)
	}
	return r
}

// BenchmarkOutboundOverhead: CPU of the whole machine while the monitored
// host makes 10 000 connections a second, with no daemon (monitor=off),
// the daemon on its default configuration (monitor=on), and, when the
// configuration has the key, the daemon with outbound.enabled: false
// (monitor=inbound). The figure to compare is cpu-us/conn: on/off - 1 is
// the overhead.
func BenchmarkOutboundOverhead(b *testing.B) {
	l := newBenchLab(b)
	win := overheadWindow
	if s := os.Getenv("SWD_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SWD_BENCH_WINDOW: %v", err)
		}
		win = d
	}
	l.window(time.Second, 0) // warm up: neighbours, listeners, page cache
	modes := []struct{ name, config string }{
		{"off", ""},
		{"on", ""},
	}
	const inboundOnly = "outbound:\n  enabled: false\n"
	if ok, out := l.configAccepted(inboundOnly); ok {
		modes = append(modes, struct{ name, config string }{"inbound", inboundOnly})
	} else {
		b.Logf("outbound.enabled not accepted, monitor=inbound skipped: %s", strings.TrimSpace(out))
	}
	// A diagnostic: the daemon without its nftables table, to tell the
	// rules' per-packet cost from the capture's.
	modes = append(modes, struct{ name, config string }{"nofirewall", "firewall:\n  enabled: false\n"})
	// go test -count repeats each sub-benchmark in a row (every off window,
	// then every on window), which would put the modes minutes apart on a
	// machine whose background load drifts. So the k-th run of any mode
	// reports round k, and a round measures every mode back to back,
	// starting with a different one each time: the modes alternate, and
	// each window has an off window beside it to be compared with
	// (overhead-%, paired, so drift between rounds cancels).
	var rounds []map[string]loadResult
	used := map[string]int{}
	round := func(b *testing.B, k int) map[string]loadResult {
		for len(rounds) <= k {
			r := map[string]loadResult{}
			for i := range modes {
				m := modes[(i+len(rounds))%len(modes)]
				waitQuiet(b)
				pid := 0
				if m.name != "off" {
					pid = l.startDaemon(l.config(m.name, m.config))
				}
				r[m.name] = l.window(win, pid)
				l.stopDaemon()
			}
			rounds = append(rounds, r)
		}
		return rounds[k]
	}
	for _, m := range modes {
		b.Run("monitor="+m.name, func(b *testing.B) {
			var sum loadResult
			overhead := 0.0
			for range b.N {
				r := round(b, used[m.name])
				used[m.name]++
				sum.add(r[m.name])
				overhead += 100 * (r[m.name].busyPerConn()/r["off"].busyPerConn() - 1)
			}
			if sum.Failed > 0 || sum.Skipped > 0 {
				b.Logf("%d connections failed, %d not started (generator behind)", sum.Failed, sum.Skipped)
			}
			busy := float64(sum.Busy) / userHZ
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(sum.OK)/sum.Seconds, "conn/s")
			b.ReportMetric(100*busy/sum.Seconds, "cpu-%")
			b.ReportMetric(1e6*sum.busyPerConn(), "cpu-us/conn")
			b.ReportMetric(100*float64(sum.Daemon)/userHZ/sum.Seconds, "daemon-cpu-%")
			// What the lab itself cost: the machine less the processes
			// outside the lab, whose load a shared machine does not control.
			lab := float64(sum.Busy-min(sum.Other, sum.Busy)) / userHZ
			b.ReportMetric(100*float64(sum.Other)/userHZ/sum.Seconds, "other-cpu-%")
			b.ReportMetric(1e6*lab/float64(sum.OK), "lab-cpu-us/conn")
			if m.name != "off" {
				b.ReportMetric(overhead/float64(b.N), "overhead-%")
			}
		})
	}
}

func (r *loadResult) add(o loadResult) {
	r.OK += o.OK
	r.Failed += o.Failed
	r.Skipped += o.Skipped
	r.Seconds += o.Seconds
	r.Busy += o.Busy
	r.Total += o.Total
	r.Daemon += o.Daemon
	r.Other += o.Other
}

// busyPerConn is the machine's busy CPU time per connection, in seconds.
func (r loadResult) busyPerConn() float64 {
	return float64(r.Busy) / userHZ / float64(max(r.OK, 1))
}

// waitQuiet waits, up to a minute and a half, for a second in which the
// machine is nearly idle (under 15 % of one core busy), so that other
// people's builds on a shared machine do not land in a window. It logs
// when it gives up; other-cpu-% then shows how much got in.
func waitQuiet(b *testing.B) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		b0, _, err := readCPU()
		time.Sleep(time.Second)
		b1, _, err1 := readCPU()
		if err != nil || err1 != nil || b1-b0 < 15*userHZ/100 {
			return
		}
		if time.Now().After(deadline) {
			b.Logf("machine still busy (%d%% of a core) after 90 s; measuring anyway", (b1-b0)*100/userHZ)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// acceptServer listens on every address on each port of -ports (a range)
// and answers each connection with one byte and a close.
func acceptServer(args []string) error {
	fs := flag.NewFlagSet("accept-server", flag.ContinueOnError)
	ports := fs.String("ports", "8000-8015", "port range")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lo, hi, _ := strings.Cut(*ports, "-")
	first, err1 := strconv.Atoi(lo)
	last, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || last < first {
		return fmt.Errorf("bad port range %q", *ports)
	}
	errc := make(chan error)
	for p := first; p <= last; p++ {
		ln, err := net.Listen("tcp4", ":"+strconv.Itoa(p))
		if err != nil {
			return err
		}
		for range 2 {
			go func() {
				one := []byte{'+'}
				for {
					c, err := ln.Accept()
					if err != nil {
						errc <- err
						return
					}
					c.Write(one)
					c.Close()
				}
			}()
		}
	}
	return <-errc
}

// loadgen opens and closes connections to the comma-separated destinations
// in turn at -rate a second for -dur: each connects, reads the server's
// byte and closes. It samples /proc/stat and the daemon's /proc/PID/stat
// at the start and the end of the window and prints a loadResult.
func loadgen(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	rate := fs.Int("rate", overheadRate, "connections a second")
	dur := fs.Duration("dur", overheadWindow, "window")
	workers := fs.Int("workers", 256, "connections in flight at most")
	pid := fs.Int("daemon-pid", 0, "the daemon's PID (0: none)")
	server := fs.Int("server-pid", 0, "the accept server's PID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsts := strings.Split(fs.Arg(0), ",")
	jobs := make(chan string, 4096)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			d := net.Dialer{Timeout: 2 * time.Second}
			for dst := range jobs {
				c, err := d.Dial("tcp4", dst)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = c.Read(buf)
				c.Close()
				if err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	busy0, total0, err := readCPU()
	if err != nil {
		return err
	}
	d0 := procTicks(*pid)
	ours := map[int]bool{os.Getpid(): true, *pid: true, *server: true}
	other0 := otherTicks(ours)
	t0 := time.Now()
	var next, skipped int64
	for {
		el := time.Since(t0)
		if el >= *dur {
			break
		}
		for due := int64(el.Seconds() * float64(*rate)); next+skipped < due; {
			select {
			case jobs <- dsts[int(next+skipped)%len(dsts)]:
				next++
			default:
				skipped++
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	close(jobs)
	wg.Wait()
	el := time.Since(t0)
	busy1, total1, err := readCPU()
	if err != nil {
		return err
	}
	var other uint64
	for p, t := range otherTicks(ours) {
		other += t - min(other0[p], t)
	}
	r := loadResult{OK: ok.Load(), Failed: failed.Load(), Skipped: skipped, Seconds: el.Seconds(),
		Busy: busy1 - busy0, Total: total1 - total0, Daemon: procTicks(*pid) - d0, Other: other}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// readCPU returns the busy (user, nice, system, irq, softirq, steal) and
// total ticks of all CPUs from /proc/stat. Guest time is already in user.
func readCPU() (busy, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", sc.Text())
	}
	var v [8]uint64
	for i := range v {
		v[i], err = strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	busy = user + nice + system + irq + softirq + steal
	return busy, busy + idle + iowait, nil
}

// procTicks is a process's utime+stime in ticks, 0 for pid 0 or a
// process that is gone.
func procTicks(pid int) uint64 {
	if pid == 0 {
		return 0
	}
	t, _ := procStat(pid)
	return t
}

// procStat reads a process's utime+stime and whether it is a kernel
// thread (PF_KTHREAD in its flags).
func procStat(pid int) (ticks uint64, kthread bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, false
	}
	// fields[0] is the state, field 3 of proc_pid_stat(5); flags, utime
	// and stime are fields 9, 14 and 15.
	flags, _ := strconv.ParseUint(fields[6], 10, 64)
	u, _ := strconv.ParseUint(fields[11], 10, 64)
	st, _ := strconv.ParseUint(fields[12], 10, 64)
	const pfKthread = 0x00200000
	return u + st, flags&pfKthread != 0
}

// otherTicks is the CPU, by PID, of every user-space process but ours.
// Kernel threads stay in the lab's share: ksoftirqd does the network's
// deferred work, ours included.
func otherTicks(ours map[int]bool) map[int]uint64 {
	m := map[int]uint64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ours[pid] {
			continue
		}
		if t, kthread := procStat(pid); !kthread && t > 0 {
			m[pid] = t
		}
	}
	return m
}
