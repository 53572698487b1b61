package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reads that google/nftables does not do well enough: the ruleset
// generation, which it has no call for, and set element dumps.
//
// Its GetSetElements receives with a buffer that starts at one page and
// grows only when a message does not fit. The kernel sizes each part of a
// dump by the largest receive buffer the socket has used, and rewalks an
// interval set from its first element for every part, so page-sized parts
// make a dump of 100 000 elements take seconds of kernel time. Receiving
// into a 64 KiB buffer from the start lets the kernel fill parts of 32 KiB
// (its cap), several times fewer walks. It also loses the errno, which we
// need to tell a missing table from a failure.

// dumpBuffer is the receive buffer for dumps; the kernel caps a dump part
// at 32 KiB, and a larger buffer is harmless.
const dumpBuffer = 64 << 10

// rawElem is one set element as the kernel dumps it.
type rawElem struct {
	key     []byte
	end     bool          // NFT_SET_ELEM_INTERVAL_END
	timeout time.Duration // 0: none
	expires time.Duration // time left
	comment string
}

// dial opens a raw netlink socket to nftables in the configured namespace.
func (e *Enforcer) dial(ctx context.Context) (*netlink.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: e.cfg.NetNS})
	if err != nil {
		return nil, e.wrap("connecting to", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultDeadline)
	}
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, e.wrap("connecting to", err)
	}
	// Room for several dump parts in flight: the kernel stops filling
	// parts while half the buffer is in use.
	_ = c.SetReadBuffer(4 << 20)
	return c, nil
}

func nfgenmsg(family byte) []byte {
	return []byte{family, unix.NFNETLINK_V0, 0, 0}
}

// generation returns the nftables ruleset generation, which every
// committed batch in the namespace (ours or anyone's) increments.
func generation(c *netlink.Conn) (uint32, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: nfgenmsg(unix.AF_UNSPEC),
	})
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("no generation ID in the kernel's answer")
}

// dumpSet returns all elements of a set in the inet table.
func dumpSet(c *netlink.Conn, table, set string) ([]rawElem, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append(nfgenmsg(unix.NFPROTO_INET), attrs...),
	})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, dumpBuffer)
	var out []rawElem
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, rerr
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Header.Sequence {
				continue // an answer to something else
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
						return nil, syscall.Errno(errno)
					}
				}
				return out, nil
			}
			if len(m.Data) < 4 {
				continue
			}
			if out, err = appendElems(out, m.Data[4:]); err != nil {
				return nil, fmt.Errorf("decoding set %q elements: %w", set, err)
			}
		}
	}
}

// appendElems decodes the NFTA_SET_ELEM_LIST_ELEMENTS of one message.
func appendElems(out []rawElem, b []byte) ([]rawElem, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return out, err
	}
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				var el rawElem
				list.Nested(func(d *netlink.AttributeDecoder) error {
					d.ByteOrder = binary.BigEndian
					for d.Next() {
						switch d.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							d.Nested(func(k *netlink.AttributeDecoder) error {
								for k.Next() {
									if k.Type() == unix.NFTA_DATA_VALUE {
										el.key = k.Bytes()
									}
								}
								return nil
							})
						case unix.NFTA_SET_ELEM_FLAGS:
							el.end = d.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
						case unix.NFTA_SET_ELEM_TIMEOUT:
							el.timeout = time.Duration(d.Uint64()) * time.Millisecond
						case unix.NFTA_SET_ELEM_EXPIRATION:
							el.expires = time.Duration(d.Uint64()) * time.Millisecond
						case unix.NFTA_SET_ELEM_USERDATA:
							el.comment, _ = userdata.GetString(d.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
						}
					}
					return nil
				})
				out = append(out, el)
			}
			return nil
		})
	}
	return out, ad.Err()
}
