// Package api is the control socket between the daemon and the CLI: a unix
// socket (mode 0660, root and the scanwarden group) carrying one JSON
// request and one JSON response per connection. The message types here are
// the contract; the daemon implements Handler.
//
// It knows nothing of packets, detection or firewalls.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Commands.
const (
	CmdStatus   = "status"
	CmdList     = "list"
	CmdBan      = "ban"
	CmdUnban    = "unban"
	CmdAllow    = "allow"
	CmdUnallow  = "unallow"
	CmdExplain  = "explain"
	CmdGrep     = "grep"
	CmdFindings = "findings"
	CmdOutbound = "outbound"
)

// Request is one call.
type Request struct {
	Cmd    string `json:"cmd"`
	Target string `json:"target,omitempty"` // an address or CIDR
	For    string `json:"for,omitempty"`    // a ban's duration ("1h", "7d", "permanent")
	Reason string `json:"reason,omitempty"`
	Since  string `json:"since,omitempty"` // a duration back from now
	Limit  int    `json:"limit,omitempty"`
}

// Response is the answer: Data on success, Error otherwise.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Peer is who called, from the socket's credentials (SO_PEERCRED).
type Peer struct {
	UID, GID, PID int
}

// String names the peer for the record: "uid 0 (root)".
func (p Peer) String() string {
	name := ""
	if u, err := user.LookupId(strconv.Itoa(p.UID)); err == nil {
		name = " (" + u.Username + ")"
	}
	return fmt.Sprintf("uid %d%s", p.UID, name)
}

// Handler answers requests.
type Handler interface {
	Handle(ctx context.Context, req *Request, peer Peer) (any, error)
}

// maxRequest bounds what a client may send.
const maxRequest = 64 << 10

// Listen prepares the socket at path: it creates the directory (0750), refuses
// if another daemon answers there, removes a stale socket file, listens, and
// sets mode 0660 with group `group` when that group exists (otherwise only
// root may connect, and the returned note says so).
func Listen(path, group string) (net.Listener, string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, "", fmt.Errorf("creating socket directory %s: %w", dir, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, "", fmt.Errorf("another scanwarden daemon is already listening on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("listening on %s: %w", path, err)
	}
	note := ""
	gid := -1
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else {
			note = fmt.Sprintf("group %q does not exist: only root can use the control socket (create it with: groupadd --system %s)", group, group)
		}
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			note = fmt.Sprintf("cannot give the socket to group %s: %v", group, err)
		} else {
			os.Chown(dir, -1, gid)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("setting mode of %s: %w", path, err)
	}
	return l, note, nil
}

// Serve answers connections on l until ctx ends. Each connection carries one
// request; a slow or hostile client cannot hold the daemon (deadlines, size
// limit) and each runs in its own goroutine.
func Serve(ctx context.Context, l net.Listener, h Handler, log *slog.Logger) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go serveConn(ctx, c.(*net.UnixConn), h, log)
	}
}

func serveConn(ctx context.Context, c *net.UnixConn, h Handler, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	peer := peerOf(c)
	var req Request
	dec := json.NewDecoder(io.LimitReader(bufio.NewReader(c), maxRequest))
	resp := Response{}
	if err := dec.Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		data, err := h.Handle(ctx, &req, peer)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK = true
			resp.Data, err = json.Marshal(data)
			if err != nil {
				resp.OK, resp.Error = false, "encoding response: "+err.Error()
			}
		}
		if log != nil && req.Cmd != CmdStatus {
			log.Debug("control request", "cmd", req.Cmd, "target", req.Target, "peer", peer.String(), "ok", resp.OK)
		}
	}
	json.NewEncoder(c).Encode(resp)
}

func peerOf(c *net.UnixConn) Peer {
	p := Peer{UID: -1, GID: -1}
	raw, err := c.SyscallConn()
	if err != nil {
		return p
	}
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			p = Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
		}
	})
	return p
}

// Call sends req to the daemon at path and decodes the answer's data into
// out (which may be nil). Errors say what to do: the daemon is not running,
// or the caller may not use the socket.
func Call(ctx context.Context, path string, req *Request, out any) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("scanwarden is not running (nothing listens on %s); start it with `scanwarden run` or `systemctl start scanwarden`", path)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("permission denied on %s: run as root or as a member of group scanwarden", path)
		}
		return fmt.Errorf("connecting to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("sending request: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	if out != nil && len(resp.Data) > 0 {
		return json.Unmarshal(resp.Data, out)
	}
	return nil
}
