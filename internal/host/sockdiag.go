package host

import (
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sockdiag"
)

// The sock_diag part (NETLINK_SOCK_DIAG, through internal/sockdiag): which
// sockets listen, and which SSH sessions are up.

const (
	tcpEstablished = sockdiag.TCPEstablished
	tcpClose       = sockdiag.TCPClose
	tcpListen      = sockdiag.TCPListen
)

// diagSocket is one socket as sock_diag describes it.
type diagSocket struct {
	proto  probe.Proto
	family uint8
	state  uint8
	local  netip.AddrPort // IPv4-mapped addresses unmapped
	remote netip.AddrPort
	uid    uint32
	inode  uint32
	v6only bool // IPV6_V6ONLY; the kernel reports it for listening and unconnected sockets
}

// diagDump lists the sockets of one protocol and family in the given states
// (a bit mask of 1<<TCP_* state numbers), filtered in the kernel by bytecode
// when bc is not empty.
func diagDump(c *netlink.Conn, proto probe.Proto, family uint8, states uint32, bc []byte, fn func(diagSocket)) error {
	err := sockdiag.Dump(c, uint8(proto), family, states, bc, func(s sockdiag.Socket) {
		fn(diagSocket{
			proto: proto, family: s.Family, state: s.State,
			local: s.Local, remote: s.Remote,
			uid: s.UID, inode: s.Inode, v6only: s.V6Only,
		})
	})
	if err != nil {
		return fmt.Errorf("listing %v sockets (sock_diag): %w", proto, err)
	}
	return nil
}

// localPortBytecode: see sockdiag.LocalPortBytecode.
func localPortBytecode(ports []uint16) []byte { return sockdiag.LocalPortBytecode(ports) }
