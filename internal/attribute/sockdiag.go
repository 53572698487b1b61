package attribute

import (
	"net/netip"

	"github.com/mdlayher/netlink"

	"github.com/scanwarden/scanwarden/internal/sockdiag"
)

// The sock_diag part (NETLINK_SOCK_DIAG, through internal/sockdiag).

// diagSocket is one socket as sock_diag describes it.
type diagSocket struct {
	local  netip.AddrPort // IPv4-mapped addresses unmapped
	remote netip.AddrPort
	uid    uint32
	inode  uint32
}

// diagDump lists the sockets of one protocol and family, in every state,
// in the namespace c was opened in, filtered in the kernel by bytecode when
// bc is not empty.
func diagDump(c *netlink.Conn, proto, family uint8, bc []byte, fn func(diagSocket)) error {
	return sockdiag.Dump(c, proto, family, sockdiag.AllStates, bc, func(s sockdiag.Socket) {
		fn(diagSocket{local: s.Local, remote: s.Remote, uid: s.UID, inode: s.Inode})
	})
}

// remoteBytecode builds a kernel filter for remotes, or nil past
// sockdiag.MaxRemotes: everything is then dumped and filtered here.
func remoteBytecode(remotes []netip.AddrPort) []byte { return sockdiag.RemoteBytecode(remotes) }
