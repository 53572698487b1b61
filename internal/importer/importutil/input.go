package importutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"syscall"
)

// ReadLimited reads at most max bytes of a file (and says so when there are
// more), so that a huge or endless file (/dev/zero) costs nothing. kind
// names the tool whose files these are, for the error: "which no PortSentry
// file is".
func ReadLimited(name string, max int, kind string) ([]byte, error) {
	f, err := open(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMax(f, name, max, kind)
}

// open opens a file, the error naming it once (not as "open NAME: ...").
func open(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// readMax reads at most max bytes of f, and fails when there are more.
func readMax(f *os.File, name string, max int, kind string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > max {
		return nil, tooLarge(name, max, kind)
	}
	return data, nil
}

func tooLarge(name string, max int, kind string) error {
	return fmt.Errorf("%s: larger than %d bytes, which no %s file is", name, max, kind)
}

// ReadRegular is ReadLimited for a file that must be a regular file: it is
// opened without blocking, so that a FIFO or a device named where a file is
// expected (by an Include line, say) cannot hang or flood the import.
func ReadRegular(name string, max int, kind string) ([]byte, error) {
	f, err := open(name, os.O_RDONLY|syscall.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, st.Mode().Type())
	}
	if st.Size() > int64(max) {
		return nil, tooLarge(name, max, kind)
	}
	return readMax(f, name, max, kind)
}

// CheckText returns an error for data that cannot be a text configuration:
// larger than max (the error names kind, the tool) or holding NUL bytes
// (binary, the error is errBinary).
func CheckText(data []byte, max int, kind string, errBinary error) error {
	if len(data) > max {
		return fmt.Errorf("%d bytes, more than the %d a %s file can plausibly be", len(data), max, kind)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return errBinary
	}
	return nil
}

// guards are the sources scanwarden never bans whatever the configuration
// says (docs/daemon.md, "Never blocked"), so an allow entry inside one of
// them adds nothing, and a ban of one is refused.
var guards = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/8"), "0.0.0.0/8, which no real scanner has"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// GuardedBy names the guard of scanwarden's that covers the whole of p
// ("loopback"), or "" when none does.
func GuardedBy(p netip.Prefix) string {
	for _, g := range guards {
		if g.p.Bits() <= p.Bits() && g.p.Contains(p.Addr()) {
			return g.what
		}
	}
	return ""
}
