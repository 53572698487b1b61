// Package hostsdeny is the TCP-wrappers enforcer: it writes bans into
// /etc/hosts.deny, as PortSentry's KILL_HOSTS_DENY did, for services built
// with libwrap (or run from tcpd) on hosts where a firewall is not an
// option.
//
// It owns one block of lines in that file and nothing else:
//
//	# BEGIN scanwarden: managed block, do not edit
//	ALL: 192.0.2.7
//	ALL: 198.51.100.0/255.255.255.0
//	ALL: [2001:db8::7]
//	ALL: [2001:db8:1::]/48
//	# END scanwarden
//
// Everything outside the block is kept byte for byte. It knows nothing of
// packets or detection.
//
// # Address formats
//
// hosts_access(5), as implemented by tcp_wrappers 7.6 with the IPv6
// patches every distribution ships (Debian's libwrap0 included), matches a
// client address against a pattern that is one of:
//
//   - an IPv4 address, compared as a string: 192.0.2.7;
//   - an IPv4 net/mask pair, both dotted quads, matched as
//     (address & mask) == net, so net must have no host bits:
//     198.51.100.0/255.255.255.0 (the "/24" form is not understood by
//     every build, so it is never written);
//   - an IPv6 address in brackets, compared as an address (so any spelling
//     matches): [2001:db8::7];
//   - an IPv6 prefix, the network in brackets and a prefix length:
//     [2001:db8:1::]/48.
//
// A single address is written as an address, a wider prefix as a pattern,
// always masked. IPv4-mapped IPv6 targets (::ffff:192.0.2.7) are written as
// IPv4, which is also how tcp_wrappers compares them. A target is a
// netip.Prefix, so nothing but these characters can reach the file.
//
// The line written per ban is Config.Line with $TARGET$ replaced by the
// pattern (default "ALL: $TARGET$": every service). TCP wrappers have no
// trailing comments, so the block's markers are comment lines of their own.
//
// # No timeouts
//
// hosts.deny has no expiry: Bans reports every entry with a zero Expires,
// and the daemon removes an entry when its ban ends. Bans that ended while
// the daemon was not running are removed when it starts and reconciles.
//
// # Writing the file
//
// Every change is one write: the whole file is written to a temporary file
// in the same directory, fsynced, given the original's mode and owner and
// renamed over the original (then the directory is fsynced), so a reader
// sees the old file or the new one, never a part. A change that would not
// change the file (adding an entry that is there, removing one that is
// not) writes nothing. Calls are serialised, and a file that another
// program changed between our read and our rename is read again and the
// change redone, so an append by another tool is not lost.
//
// The path must name a regular file or nothing. A symbolic link is
// refused, not followed: replacing it would turn it into a regular file
// and silently detach it from its target, and writing through it would let
// whoever controls the link choose which file root rewrites. The error
// names the link's target, to configure instead.
//
// Lines inside the block that are not entries (someone edited it) are kept
// as they are, and moved out of the way rather than deleted by Teardown.
// Entries written with another Line (the setting changed) are still read as
// bans, and rewritten in the current form by Setup.
package hostsdeny

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// Defaults.
const (
	DefaultPath = "/etc/hosts.deny"
	DefaultLine = "ALL: $TARGET$"
)

// The block's markers. A line is recognised by its prefix, so the rest of
// the BEGIN line may say anything.
const (
	beginMarker = "# BEGIN scanwarden"
	beginLine   = beginMarker + ": managed block, do not edit"
	endMarker   = "# END scanwarden"
	placeholder = "$TARGET$"
)

// rewriteAttempts bounds how often a write is redone because another
// program changed the file at the same moment.
const rewriteAttempts = 5

// Config configures an Enforcer.
type Config struct {
	// Path is the file (DefaultPath when empty); an absolute path.
	Path string
	// Line is the line written per ban, holding $TARGET$ (DefaultLine
	// when empty).
	Line string
}

// Enforcer keeps bans in a block of a hosts.deny file.
type Enforcer struct {
	path string
	line string
	mu   sync.Mutex
}

// New checks the configuration and returns an Enforcer. It does not touch
// the file; Setup does.
func New(cfg Config) (*Enforcer, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Line == "" {
		cfg.Line = DefaultLine
	}
	if !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("hosts.deny path %q is not absolute", cfg.Path)
	}
	if err := checkLine(cfg.Line); err != nil {
		return nil, fmt.Errorf("hosts.deny line %q: %w", cfg.Line, err)
	}
	return &Enforcer{path: filepath.Clean(cfg.Path), line: cfg.Line}, nil
}

func checkLine(l string) error {
	i := strings.Index(l, placeholder)
	switch {
	case i < 0:
		return errors.New("must contain $TARGET$")
	case strings.ContainsAny(l, "\n\r\x00"):
		return errors.New("must be one line")
	case strings.HasPrefix(strings.TrimLeft(l, " \t"), "#"):
		return errors.New("is a comment: it would ban nothing")
	case strings.HasSuffix(l, `\`):
		return errors.New(`ends with "\": it would continue onto the next line`)
	case !strings.Contains(l[:i], ":"):
		return errors.New(`needs "daemons: $TARGET$" (a daemon list, a colon, then the client)`)
	}
	return nil
}

// Name implements enforce.Enforcer.
func (e *Enforcer) Name() string { return "hosts.deny" }

// Path is the file the Enforcer writes.
func (e *Enforcer) Path() string { return e.path }

// Setup implements enforce.Enforcer: it creates the file (mode 0644) if it
// does not exist, checks that its block (if any) is well formed, and
// rewrites entries that are not in the current Line's form.
func (e *Enforcer) Setup(ctx context.Context) error {
	return e.update(ctx, true, func(*content) {})
}

// Apply implements enforce.Enforcer: removals first, then additions, in one
// write (none when nothing changes). Expiries are ignored: see the package
// documentation.
func (e *Enforcer) Apply(ctx context.Context, add []enforce.Ban, remove []netip.Prefix) error {
	var adds, rems []netip.Prefix
	for _, p := range remove {
		n, err := normalize(p)
		if err != nil {
			return err
		}
		rems = append(rems, n)
	}
	for _, b := range add {
		n, err := normalize(b.Prefix)
		if err != nil {
			return err
		}
		adds = append(adds, n)
	}
	return e.update(ctx, true, func(c *content) {
		for _, p := range rems {
			c.remove(p)
		}
		for _, p := range adds {
			c.add(p)
		}
	})
}

// Bans implements enforce.Enforcer: the entries of the block, in file
// order, each with a zero Expires.
func (e *Enforcer) Bans(ctx context.Context) ([]enforce.Ban, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, _, err := e.read(false)
	if err != nil {
		return nil, err
	}
	var out []enforce.Ban
	for _, en := range c.entries {
		if en.ok {
			out = append(out, enforce.Ban{Prefix: en.prefix})
		}
	}
	return out, nil
}

// Teardown implements enforce.Enforcer: it removes the block (lines in it
// that are not entries stay, where it was) and leaves the rest of the file
// as it is. A missing file or block is not an error.
func (e *Enforcer) Teardown(ctx context.Context) error {
	return e.update(ctx, false, func(c *content) { c.hasBlock = false })
}

// update reads the file, lets change modify it, puts the block in
// canonical form and writes the file if that changed it. It redoes all of
// it when another program changed the file meanwhile.
func (e *Enforcer) update(ctx context.Context, create bool, change func(*content)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range rewriteAttempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, st, err := e.read(create)
		if err != nil {
			return err
		}
		change(c)
		if c.hasBlock {
			c.canonicalize(e.line)
		}
		data := c.render()
		if bytes.Equal(data, c.orig) {
			return nil // nothing to do: no write
		}
		err = e.write(data, st)
		if !errors.Is(err, errChanged) {
			return err
		}
	}
	return fmt.Errorf("%s: another program keeps changing the file; gave up after %d attempts", e.path, rewriteAttempts)
}

// normalize turns a target into the prefix the block holds: masked, with
// IPv4-mapped IPv6 as IPv4.
func normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %v", p)
	}
	a := p.Addr().WithZone("")
	bits := p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// errChanged says the file changed between read and rename.
var errChanged = errors.New("file changed while being rewritten")

// fileState is what the file was when read: to keep its mode and owner,
// and to notice whether someone else changed it before our rename.
type fileState struct {
	exists bool
	mode   os.FileMode
	uid    int
	gid    int
	dev    uint64
	ino    uint64
	size   int64
	mtime  syscall.Timespec
}

func stateOf(fi os.FileInfo) fileState {
	st := fileState{exists: true, mode: fi.Mode().Perm(), size: fi.Size()}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.uid, st.gid = int(s.Uid), int(s.Gid)
		st.dev, st.ino = s.Dev, s.Ino
		st.mtime = s.Mtim
	}
	return st
}

// read opens the file without following a symbolic link and parses it. A
// missing file reads as empty; with create, it is created (0644) first.
func (e *Enforcer) read(create bool) (*content, fileState, error) {
	f, err := os.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) && create {
		if err := e.create(); err != nil {
			return nil, fileState{}, err
		}
		f, err = os.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &content{}, fileState{}, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, fileState{}, e.symlinkError()
	case err != nil:
		return nil, fileState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fileState{}, fmt.Errorf("%s is not a regular file (%v)", e.path, fi.Mode().Type())
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fileState{}, fmt.Errorf("reading %s: %w", e.path, err)
	}
	c, err := parse(buf.Bytes(), e.line)
	if err != nil {
		return nil, fileState{}, fmt.Errorf("%s:%w", e.path, err)
	}
	return c, stateOf(fi), nil
}

func (e *Enforcer) symlinkError() error {
	target, err := filepath.EvalSymlinks(e.path)
	if err != nil {
		target = "?"
	}
	return fmt.Errorf("%s is a symbolic link (to %s); refusing to replace it or write through it: configure the real file's path instead", e.path, target)
}

// create makes an empty file, mode 0644 whatever the umask.
func (e *Enforcer) create() error {
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil // someone else made it meanwhile: read that
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", e.path, err)
	}
	defer f.Close()
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("creating %s: %w", e.path, err)
	}
	return f.Sync()
}

// write replaces the file with data atomically, keeping the mode and owner
// the file had when read. It returns errChanged, writing nothing, if the
// file is no longer what was read.
func (e *Enforcer) write(data []byte, st fileState) (err error) {
	dir, base := filepath.Split(e.path)
	tmp, err := os.CreateTemp(dir, "."+base+".scanwarden-*")
	if err != nil {
		if st.exists && (errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)) {
			// The directory is read-only to us while the file is not: a
			// systemd unit with ProtectSystem=strict that makes only
			// /etc/hosts.deny writable. Rewrite the file in place: not
			// atomic, but the file is small and written in one call.
			return e.writeInPlace(data, st)
		}
		return fmt.Errorf("writing %s: %w", e.path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	mode := os.FileMode(0o644)
	if st.exists {
		mode = st.mode
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if st.exists {
		if err := tmp.Chown(st.uid, st.gid); err != nil {
			return fmt.Errorf("giving %s the owner of %s: %w", tmp.Name(), e.path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if !e.unchanged(st) {
		return errChanged
	}
	if err := os.Rename(tmp.Name(), e.path); err != nil {
		return fmt.Errorf("replacing %s: %w", e.path, err)
	}
	return syncDir(dir)
}

// writeInPlace truncates and rewrites the file (see write).
func (e *Enforcer) writeInPlace(data []byte, st fileState) error {
	if !e.unchanged(st) {
		return errChanged
	}
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("rewriting %s in place: %w", e.path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("rewriting %s in place: %w", e.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("rewriting %s in place: %w", e.path, err)
	}
	return f.Close()
}

// unchanged reports whether the file is still the one read, as it was.
func (e *Enforcer) unchanged(st fileState) bool {
	fi, err := os.Lstat(e.path)
	if err != nil {
		return !st.exists && errors.Is(err, os.ErrNotExist)
	}
	if !st.exists || !fi.Mode().IsRegular() {
		return false
	}
	now := stateOf(fi)
	return now.dev == st.dev && now.ino == st.ino && now.size == st.size && now.mtime == st.mtime
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
