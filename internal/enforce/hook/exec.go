package hook

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// outputLimit bounds what is kept of a hook's standard output and of its
// standard error: enough for an error message or a short report, and a
// hook that prints megabytes cannot fill the daemon's memory or its log.
const outputLimit = 4 << 10

// Grace periods, variables so that tests can shorten them.
var (
	// killGrace is how long a hook's process group has between SIGTERM
	// and SIGKILL at the timeout: long enough for a script's trap to
	// clean up, short enough not to matter next to the timeout.
	killGrace = 500 * time.Millisecond
	// pipeGrace bounds the wait for a hook's output after its process
	// group is gone: a process that left the group (setsid) but kept the
	// pipes open cannot hold the runner.
	pipeGrace = time.Second
)

// capped keeps the first outputLimit bytes written to it and counts the
// rest. It always accepts everything, so the hook never blocks on a full
// pipe.
type capped struct {
	buf       []byte
	truncated int
}

func (c *capped) Write(p []byte) (int, error) {
	room := outputLimit - len(c.buf)
	if room > len(p) {
		room = len(p)
	}
	c.buf = append(c.buf, p[:room]...)
	c.truncated += len(p) - room
	return len(p), nil
}

// outcome is how one run of a hook ended.
type outcome struct {
	startErr  error  // the program could not be started
	exitCode  int    // -1 when killed by a signal or not started
	status    string // "exit status 1", "signal: killed"
	waitErr   error  // from Wait, when not a plain non-zero exit
	timedOut  bool   // killed at its timeout
	cancelled bool   // killed because the caller's context ended
	elapsed   time.Duration
	stdout    capped
	stderr    capped
}

func (o *outcome) ok() bool {
	return o.startErr == nil && o.exitCode == 0 && !o.timedOut && !o.cancelled
}

// run executes argv with env in its own process group and returns when the
// program has exited (or been killed at timeout or when ctx ends) and
// anything left in its process group has been killed.
func run(ctx context.Context, argv, env []string, timeout time.Duration) *outcome {
	o := &outcome{exitCode: -1}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := &exec.Cmd{
		Path:        argv[0],
		Args:        argv,
		Env:         env,
		Dir:         "/",
		Stdout:      &o.stdout,
		Stderr:      &o.stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   pipeGrace,
	}
	start := time.Now()
	defer func() { o.elapsed = time.Since(start) }()
	if err := cmd.Start(); err != nil {
		o.startErr = err
		return o
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		waitExited(pid)
		close(exited)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		// The caller's context ending (even at its own deadline) is a
		// cancellation; only our timer is a timeout.
		o.cancelled = parent.Err() != nil
		o.timedOut = !o.cancelled
		unix.Kill(-pid, unix.SIGTERM)
		t := time.NewTimer(killGrace)
		select {
		case <-exited:
		case <-t.C:
		}
		t.Stop()
	}
	// The leader has exited or is about to be killed, but it is not reaped
	// yet, so its PID, which is the group's ID, cannot have been reused:
	// this signal reaches only what the hook left in its group.
	unix.Kill(-pid, unix.SIGKILL)
	<-exited
	err := cmd.Wait()
	o.exitCode = cmd.ProcessState.ExitCode()
	o.status = cmd.ProcessState.String()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		o.waitErr = err // exec.ErrWaitDelay: the pipes were held open
	}
	return o
}

// waitExited blocks until process pid has exited, without reaping it
// (WNOWAIT), so that its process group ID stays reserved until Wait.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
