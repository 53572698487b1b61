package nflog

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The nfnetlink_log protocol, from include/uapi/linux/netfilter/nfnetlink_log.h
// and net/netfilter/nfnetlink_log.c. Netlink headers and attribute headers
// are in host byte order; attribute values are in network byte order.

const (
	subsysULOG = 4 // NFNL_SUBSYS_ULOG

	// Message types: the subsystem in the high byte.
	msgPacket = subsysULOG<<8 | 0 // NFULNL_MSG_PACKET: a logged packet
	msgConfig = subsysULOG<<8 | 1 // NFULNL_MSG_CONFIG: bind, unbind, settings

	nlmsgHdrLen    = 16 // struct nlmsghdr
	nlaHdrLen      = 4  // struct nlattr
	sizeofNfgenmsg = 4  // struct nfgenmsg: family, version, res_id (be16)
	sizeofPktHdr   = 4  // struct nfulnl_msg_packet_hdr: hw_protocol (be16), hook, pad
	sizeofTstamp   = 16 // struct nfulnl_msg_packet_timestamp: sec, usec (be64 each)

	nlaTypeMask = 0x3fff // attribute type without NLA_F_NESTED, NLA_F_NET_BYTEORDER

	nlmsgNoop  = 1 // NLMSG_NOOP
	nlmsgError = 2 // NLMSG_ERROR: an error or an acknowledgement
	nlmsgDone  = 3 // NLMSG_DONE: ends a batch of several messages (NLM_F_MULTI)
)

// Packet attributes (enum nfulnl_attr_type).
const (
	attrPacketHdr   = 1  // NFULA_PACKET_HDR
	attrMark        = 2  // NFULA_MARK
	attrTimestamp   = 3  // NFULA_TIMESTAMP
	attrIfIndexIn   = 4  // NFULA_IFINDEX_INDEV
	attrIfIndexOut  = 5  // NFULA_IFINDEX_OUTDEV
	attrPhysIndev   = 6  // NFULA_IFINDEX_PHYSINDEV
	attrPhysOutdev  = 7  // NFULA_IFINDEX_PHYSOUTDEV
	attrHWAddr      = 8  // NFULA_HWADDR
	attrPayload     = 9  // NFULA_PAYLOAD: the packet from its network header
	attrPrefix      = 10 // NFULA_PREFIX: the rule's prefix, NUL-terminated
	attrUID         = 11 // NFULA_UID
	attrSeq         = 12 // NFULA_SEQ: per-group sequence number (NFULNL_CFG_F_SEQ)
	attrSeqGlobal   = 13 // NFULA_SEQ_GLOBAL
	attrGID         = 14 // NFULA_GID
	attrHWType      = 15 // NFULA_HWTYPE
	attrHWHeader    = 16 // NFULA_HWHEADER
	attrHWLen       = 17 // NFULA_HWLEN
	attrConntrack   = 18 // NFULA_CT
	attrConntrackIn = 19 // NFULA_CT_INFO
	attrVLAN        = 20 // NFULA_VLAN
	attrL2Hdr       = 21 // NFULA_L2HDR
)

// Configuration attributes (enum nfulnl_attr_config).
const (
	cfgCmd      = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd { u8 command }
	cfgMode     = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode { be32 copy_range; u8 copy_mode; u8 pad } (packed, 6 bytes)
	cfgNLBufSiz = 3 // NFULA_CFG_NLBUFSIZ: be32 bytes
	cfgTimeout  = 4 // NFULA_CFG_TIMEOUT: be32, in 1/100 s
	cfgQThresh  = 5 // NFULA_CFG_QTHRESH: be32 messages
	cfgFlags    = 6 // NFULA_CFG_FLAGS: be16
)

// Configuration commands (enum nfulnl_msg_config_cmds).
//
// PF_BIND and PF_UNBIND are not sent. They make nfnetlink_log the
// namespace-wide default logger of an address family (what
// /proc/net/netfilter/nf_log lists), which is what rules that log without
// naming a logger use: conntrack's nf_conntrack_log_invalid, for one. Since
// Linux 3.17 nfnetlink_log registers itself for every family when loaded,
// and nft's `log group N` and iptables' NFLOG name it explicitly, so binding
// a group is enough; changing the default logger would change what other
// software's log rules do, and unbinding it on exit would break them.
const (
	cmdNone     = 0 // NFULNL_CFG_CMD_NONE
	cmdBind     = 1 // NFULNL_CFG_CMD_BIND
	cmdUnbind   = 2 // NFULNL_CFG_CMD_UNBIND
	cmdPFBind   = 3 // NFULNL_CFG_CMD_PF_BIND (not sent; see above)
	cmdPFUnbind = 4 // NFULNL_CFG_CMD_PF_UNBIND (not sent)
)

// Copy modes and flags.
const (
	copyNone   = 0 // NFULNL_COPY_NONE
	copyMeta   = 1 // NFULNL_COPY_META
	copyPacket = 2 // NFULNL_COPY_PACKET

	flagSeq       = 0x1 // NFULNL_CFG_F_SEQ: number each group's messages
	flagSeqGlobal = 0x2 // NFULNL_CFG_F_SEQ_GLOBAL
	flagConntrack = 0x4 // NFULNL_CFG_F_CONNTRACK

	// copyRangeMax is NFULNL_COPY_RANGE_MAX: a payload attribute's length
	// is 16 bits and includes its 4-byte header.
	copyRangeMax = 0xffff - nlaHdrLen
)

// Address families in nfgenmsg (NFPROTO_*).
const (
	familyInet   = 1
	familyIPv4   = 2
	familyNetdev = 5
	familyBridge = 7
	familyIPv6   = 10
)

// Hook is the netfilter hook a packet was logged at.
type Hook uint8

// Hooks of the ip, ip6, inet and bridge families (NF_INET_*, NF_BR_*, which
// share their numbers). A netdev family's ingress hook is reported as
// HookPrerouting and its egress hook as HookPostrouting.
const (
	HookPrerouting  Hook = 0
	HookInput       Hook = 1
	HookForward     Hook = 2
	HookOutput      Hook = 3
	HookPostrouting Hook = 4
)

var hookNames = [...]string{"prerouting", "input", "forward", "output", "postrouting"}

func (h Hook) String() string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return fmt.Sprintf("hook-%d", uint8(h))
}

// configMessage is the body of an NFULNL_MSG_CONFIG for group: the nfgenmsg
// header, the command (cmdNone for none) and, for a bind, the settings.
func configMessage(group uint16, cmd uint8, set *settings) []byte {
	b := make([]byte, sizeofNfgenmsg, 64)
	b[0] = 0 // AF_UNSPEC: the family matters only to PF_BIND/PF_UNBIND
	b[1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[2:4], group)
	if cmd != cmdNone {
		b = appendAttr(b, cfgCmd, []byte{cmd})
	}
	if set != nil {
		var mode [6]byte
		binary.BigEndian.PutUint32(mode[0:4], uint32(set.copyRange))
		mode[4] = copyPacket
		b = appendAttr(b, cfgMode, mode[:])
		b = appendAttr(b, cfgNLBufSiz, binary.BigEndian.AppendUint32(nil, set.nlbufsiz))
		b = appendAttr(b, cfgTimeout, binary.BigEndian.AppendUint32(nil, uint32(set.flush/(10*time.Millisecond))))
		b = appendAttr(b, cfgQThresh, binary.BigEndian.AppendUint32(nil, set.qthresh))
		b = appendAttr(b, cfgFlags, binary.BigEndian.AppendUint16(nil, flagSeq))
	}
	return b
}

// appendAttr appends one netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// settings are what a bind asks of the kernel for each group.
type settings struct {
	copyRange uint16
	nlbufsiz  uint32
	flush     time.Duration
	qthresh   uint32
}
