package connwatch

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The tracepoint, as a tracefs group and event name.
const (
	tpGroup = "sock"
	tpName  = "inet_sock_set_state"
)

// tracefsDirs are where tracefs is found: its own mount point since Linux
// 4.1, and under debugfs on older or minimal systems.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// field is one field of a trace event record, as its format file lists it.
type field struct {
	Offset int
	Size   int
	Signed bool
}

// format is a trace event's record layout: field name → field.
type format map[string]field

// parseFormat reads a tracefs format file. Field lines look like
//
//	field:__u8 saddr[4];	offset:32;	size:4;	signed:0;
//
// Lines that are not fields (name, ID, print fmt) are skipped.
func parseFormat(text string) (format, error) {
	f := format{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		name, fl, err := parseField(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		f[name] = fl
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

func parseField(line string) (string, field, error) {
	var name string
	var fl field
	var haveOff, haveSize bool
	for part := range strings.SplitSeq(line, ";") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "field":
			name = fieldName(val)
		case "offset":
			fl.Offset, err = strconv.Atoi(val)
			haveOff = true
		case "size":
			fl.Size, err = strconv.Atoi(val)
			haveSize = true
		case "signed":
			fl.Signed = val == "1"
		}
		if err != nil {
			return "", field{}, fmt.Errorf("%s of %q: %w", key, name, err)
		}
	}
	switch {
	case name == "":
		return "", field{}, errors.New("field without a name")
	case !haveOff || !haveSize:
		return "", field{}, fmt.Errorf("field %q without offset or size", name)
	case fl.Offset < 0 || fl.Size <= 0:
		return "", field{}, fmt.Errorf("field %q: offset %d, size %d", name, fl.Offset, fl.Size)
	}
	return name, fl, nil
}

// fieldName takes the name out of a C declaration: "__u8 saddr[4]" → saddr.
func fieldName(decl string) string {
	decl = strings.TrimSpace(decl)
	if i := strings.IndexByte(decl, '['); i >= 0 {
		decl = decl[:i]
	}
	if i := strings.LastIndexAny(decl, " \t*"); i >= 0 {
		decl = decl[i+1:]
	}
	return decl
}

// tracefsDir returns the mounted tracefs holding the tracepoint. As root it
// mounts tracefs at /sys/kernel/tracing when none is found; the mount is
// left in place, as systemd would have made it.
func tracefsDir() (string, error) {
	for _, d := range tracefsDirs {
		_, err := os.Stat(filepath.Join(d, "events"))
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, os.ErrPermission):
			// tracefs is mode 0700 unless mounted with gid= and mode=.
			return "", fmt.Errorf("%w: cannot read tracefs at %s: needs root (%v)", ErrUnsupported, d, err)
		}
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: tracefs is not mounted (mount -t tracefs nodev %s, as root)", ErrUnsupported, tracefsDirs[0])
	}
	if err := unix.Mount("nodev", tracefsDirs[0], "tracefs", 0, ""); err != nil {
		return "", fmt.Errorf("%w: tracefs is not mounted and mounting it at %s failed: %v", ErrUnsupported, tracefsDirs[0], err)
	}
	return tracefsDirs[0], nil
}

// readFormat reads and parses the tracepoint's format file.
func readFormat() (format, error) {
	dir, err := tracefsDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "events", tpGroup, tpName, "format")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: no tracepoint %s/%s in this kernel (%s missing; it needs Linux 4.16)", ErrUnsupported, tpGroup, tpName, path)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("%w: reading %s needs root: %v", ErrUnsupported, path, err)
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	f, err := parseFormat(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
