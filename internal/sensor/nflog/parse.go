package nflog

import (
	"encoding/binary"
	"errors"
	"time"
)

// Meta is what a log message says about its packet besides the packet
// itself. It is reused for every message: Prefix points into the read
// buffer, so nothing of it may be kept after the callback returns.
type Meta struct {
	Group  uint16 // the log group (nft `log group N`)
	Family uint8  // NFPROTO_*: 2 IPv4, 10 IPv6, 7 bridge, 5 netdev
	Hook   Hook

	// HWProto is the packet's EtherType as the kernel knew it
	// (skb->protocol): 0x0800, 0x86dd, 0x0806 for ARP in a bridge chain.
	HWProto uint16

	// Prefix is the rule's log prefix without its terminating NUL, or nil.
	// It is the ruleset author's free text: reported, never interpreted.
	Prefix []byte

	// Interfaces by index, 0 when absent: a packet has an input interface
	// at prerouting, input and forward, an output interface at forward,
	// output and postrouting.
	InIndex, OutIndex uint32

	Mark     uint32
	UID, GID uint32 // the local socket's owner, for packets a local process sent
	HasUID   bool
	HasGID   bool

	// Seq is the group's message number (the kernel counts from 0); gaps
	// are messages lost to a full socket buffer.
	Seq    uint32
	HasSeq bool

	// Timestamp is the packet's receive time when the kernel put one in
	// the message (NFULA_TIMESTAMP); zero otherwise.
	Timestamp time.Time
}

// Parse errors. Each is a reason to count a message as malformed.
var (
	errShortMessage = errors.New("message shorter than its nfgenmsg header")
	errAttrLength   = errors.New("attribute length runs past the message")
	errAttrSize     = errors.New("attribute too short for its type")
	errNoHeader     = errors.New("no packet header attribute")
)

// parsePacket reads the body of an NFULNL_MSG_PACKET message (after the
// nlmsghdr) into m and returns the payload, which aliases b (nil when the
// message carries none). It allocates nothing.
func parsePacket(b []byte, m *Meta) (payload []byte, err error) {
	*m = Meta{}
	if len(b) < sizeofNfgenmsg {
		return nil, errShortMessage
	}
	m.Family = b[0]
	m.Group = binary.BigEndian.Uint16(b[2:4])
	b = b[sizeofNfgenmsg:]
	header := false
	for len(b) >= nlaHdrLen {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < nlaHdrLen || l > len(b) {
			return nil, errAttrLength
		}
		v := b[nlaHdrLen:l]
		switch typ {
		case attrPacketHdr:
			if len(v) < sizeofPktHdr {
				return nil, errAttrSize
			}
			m.HWProto = binary.BigEndian.Uint16(v[0:2])
			m.Hook = Hook(v[2])
			header = true
		case attrPayload:
			payload = v
		case attrPrefix:
			m.Prefix = trimNUL(v)
		case attrTimestamp:
			if len(v) < sizeofTstamp {
				return nil, errAttrSize
			}
			sec := int64(binary.BigEndian.Uint64(v[0:8]))
			usec := int64(binary.BigEndian.Uint64(v[8:16]))
			if sec > 0 && usec >= 0 && usec < 1e6 {
				m.Timestamp = time.Unix(sec, usec*1e3)
			}
		case attrIfIndexIn, attrIfIndexOut, attrMark, attrUID, attrGID, attrSeq:
			if len(v) < 4 {
				return nil, errAttrSize
			}
			x := binary.BigEndian.Uint32(v[0:4])
			switch typ {
			case attrIfIndexIn:
				m.InIndex = x
			case attrIfIndexOut:
				m.OutIndex = x
			case attrMark:
				m.Mark = x
			case attrUID:
				m.UID, m.HasUID = x, true
			case attrGID:
				m.GID, m.HasGID = x, true
			case attrSeq:
				m.Seq, m.HasSeq = x, true
			}
		}
		// The last attribute's padding may be missing.
		l = (l + 3) &^ 3
		if l >= len(b) {
			break
		}
		b = b[l:]
	}
	if !header {
		return nil, errNoHeader
	}
	if m.Family == familyNetdev && m.Hook == 1 { // NF_NETDEV_EGRESS
		m.Hook = HookPostrouting
	}
	return payload, nil
}

// trimNUL cuts a C string at its first NUL.
func trimNUL(v []byte) []byte {
	for i, c := range v {
		if c == 0 {
			return v[:i]
		}
	}
	return v
}

// message is one netlink message of a datagram.
type message struct {
	typ   uint16
	flags uint16
	seq   uint32
	body  []byte // after the nlmsghdr
}

// nextMessage splits the first netlink message off b. ok is false when b
// holds no more whole message; bad is true when what is left is not one
// (a length shorter than the header or longer than the datagram).
func nextMessage(b []byte) (m message, rest []byte, ok, bad bool) {
	if len(b) < nlmsgHdrLen {
		return message{}, nil, false, len(b) != 0
	}
	l := int(binary.NativeEndian.Uint32(b[0:4]))
	if l < nlmsgHdrLen || l > len(b) {
		return message{}, nil, false, true
	}
	m = message{
		typ:   binary.NativeEndian.Uint16(b[4:6]),
		flags: binary.NativeEndian.Uint16(b[6:8]),
		seq:   binary.NativeEndian.Uint32(b[8:12]),
		body:  b[nlmsgHdrLen:l],
	}
	l = (l + 3) &^ 3
	if l >= len(b) {
		return m, nil, true, false
	}
	return m, b[l:], true, false
}

// ackError reads an NLMSG_ERROR body: 0 for an acknowledgement, else a
// positive errno. ok is false when the body is too short.
func ackError(body []byte) (errno int32, ok bool) {
	if len(body) < 4 {
		return 0, false
	}
	return -int32(binary.NativeEndian.Uint32(body[0:4])), true
}
