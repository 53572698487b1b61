package nflog

import (
	"net/netip"

	"github.com/scanwarden/scanwarden/internal/host"
)

// fakeHost is a host view for unit tests: its addresses, its links by
// index, and whether it forwards.
type fakeHost struct {
	local   []netip.Addr
	links   map[int]host.Link
	forward bool
}

func (f *fakeHost) IsLocal(a netip.Addr) bool {
	for _, l := range f.local {
		if l == a {
			return true
		}
	}
	return false
}

func (f *fakeHost) LinkByIndex(i int) (host.Link, bool) {
	l, ok := f.links[i]
	return l, ok
}

func (f *fakeHost) Forwarding() bool { return f.forward }
