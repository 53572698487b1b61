package connwatch

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// The raw tracepoint. The classic tracepoint (format.go) costs every TCP
// state change on the host, whatever the program then does with it: the
// kernel fills a perf record of the event's twelve fields before the
// program runs. A connection goes through about five changes on each end,
// and only one, to SYN_SENT, is a connect. Attached to the raw tracepoint,
// the program gets the tracepoint's arguments (sk, oldstate, newstate) as
// they are, returns at once on the other four, and reads the socket
// itself: at 10 000 connections a second over veth the classic tracepoint
// cost about 2 µs of CPU per connection, most of it for changes the
// program throws away. The socket's layout comes from the kernel's BTF
// (/sys/kernel/btf/vmlinux); without it the classic tracepoint is used.

// raw tracepoint arguments: u64 slots of the context.
const (
	rawArgSock     = 0  // const struct sock *sk
	rawArgNewState = 16 // int newstate
)

// sockField is where a field of struct sock lies, in bytes.
type sockField struct {
	Offset, Size int
}

// sockLayout is what the raw program reads of a struct sock.
type sockLayout struct {
	Protocol           sockField // sk_protocol: u16 since Linux 5.6, a bitfield before
	Family, Dport      sockField // __sk_common.skc_family, skc_dport (network order)
	Saddr4, Daddr4     sockField // skc_rcv_saddr, skc_daddr
	Saddr6, Daddr6     sockField // skc_v6_rcv_saddr, skc_v6_daddr
	commonLo, commonHi int       // the span of sock_common read in one go
}

// maxCommonSpan bounds the bytes of sock_common copied to the stack (the
// program's stack is 512 bytes, the record takes 96).
const maxCommonSpan = 256

// errNoLayout is returned when BTF lacks a field or holds it in a form the
// program does not read (a bitfield, an unexpected width).
var errNoLayout = errors.New("struct sock layout not usable")

// loadSockLayout reads struct sock's layout from the running kernel's BTF.
func loadSockLayout() (sockLayout, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return sockLayout{}, fmt.Errorf("kernel BTF: %w", err)
	}
	var sock *btf.Struct
	if err := spec.TypeByName("sock", &sock); err != nil {
		return sockLayout{}, fmt.Errorf("kernel BTF: struct sock: %w", err)
	}
	return sockLayoutOf(sock)
}

// sockLayoutOf finds the fields in struct sock (through __sk_common and
// the anonymous unions and structs it is made of).
func sockLayoutOf(sock *btf.Struct) (sockLayout, error) {
	var l sockLayout
	for _, f := range []struct {
		dst   *sockField
		name  string
		sizes []int
	}{
		{&l.Protocol, "sk_protocol", []int{2}},
		{&l.Family, "skc_family", []int{2}},
		{&l.Dport, "skc_dport", []int{2}},
		{&l.Saddr4, "skc_rcv_saddr", []int{4}},
		{&l.Daddr4, "skc_daddr", []int{4}},
		{&l.Saddr6, "skc_v6_rcv_saddr", []int{16}},
		{&l.Daddr6, "skc_v6_daddr", []int{16}},
	} {
		off, size, err := memberOf(sock, f.name, 0)
		if err != nil {
			return sockLayout{}, err
		}
		ok := false
		for _, s := range f.sizes {
			ok = ok || s == size
		}
		if !ok {
			return sockLayout{}, fmt.Errorf("%w: %s is %d bytes, expected %v", errNoLayout, f.name, size, f.sizes)
		}
		*f.dst = sockField{Offset: off, Size: size}
	}
	common := []sockField{l.Family, l.Dport, l.Saddr4, l.Daddr4, l.Saddr6, l.Daddr6}
	lo, hi := common[0].Offset, 0
	for _, f := range common {
		lo, hi = min(lo, f.Offset), max(hi, f.Offset+f.Size)
	}
	lo &^= 7
	hi = (hi + 7) &^ 7
	if hi-lo > maxCommonSpan {
		return sockLayout{}, fmt.Errorf("%w: socket addresses span %d bytes", errNoLayout, hi-lo)
	}
	l.commonLo, l.commonHi = lo, hi
	return l, nil
}

// memberOf returns the byte offset (from base) and size of the member
// called name, searching anonymous members and named struct members whose
// names start with "__sk_common" (the one embedded struct the fields sit
// in). Bitfields are refused.
func memberOf(t btf.Type, name string, base int) (int, int, error) {
	var members []btf.Member
	switch t := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = t.Members
	case *btf.Union:
		members = t.Members
	default:
		return 0, 0, fmt.Errorf("%w: no %s", errNoLayout, name)
	}
	for _, m := range members {
		if m.Offset%8 != 0 {
			continue // inside a bitfield run
		}
		off := base + int(m.Offset/8)
		switch {
		case m.Name == name:
			if m.BitfieldSize != 0 {
				return 0, 0, fmt.Errorf("%w: %s is a bitfield", errNoLayout, name)
			}
			size, err := btf.Sizeof(m.Type)
			if err != nil {
				return 0, 0, fmt.Errorf("%w: size of %s: %v", errNoLayout, name, err)
			}
			return off, size, nil
		case m.Name == "" || m.Name == "__sk_common":
			if o, s, err := memberOf(m.Type, name, off); err == nil {
				return o, s, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("%w: no %s", errNoLayout, name)
}

// Stack frame of the raw program, below the record and the drop key
// (program in prog.go): the protocol, then the copy of sock_common.
const stackProto = stackKey - 8

// rawProgram assembles the program for the raw tracepoint, reading the
// socket as l says. ring and drops are as for program.
//
//	if ctx[newstate] != TCP_SYN_SENT: return 0
//	sk = ctx[sk]
//	if probe_read_kernel(&proto, 2, &sk->sk_protocol) || proto != IPPROTO_TCP: return 0
//	rec = {0}; fill it from helpers
//	if probe_read_kernel(&common, span, (void *)sk + lo): return 0
//	copy family, ntohs(dport) and the addresses from common into rec
//	output as program does
func rawProgram(l sockLayout, ring, drops int) asm.Instructions {
	span := l.commonHi - l.commonLo
	common := int16(stackProto - span)
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, rawArgNewState, asm.DWord),
		asm.JNE.Imm(asm.R2, tcpSynSent, "exit"),
		asm.LoadMem(asm.R7, asm.R6, rawArgSock, asm.DWord), // R7: sk, kept across calls

		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackProto),
		asm.Mov.Imm(asm.R2, 2),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, int32(l.Protocol.Offset)),
		asm.FnProbeReadKernel.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R2, asm.RFP, stackProto, asm.Half),
		asm.JNE.Imm(asm.R2, ipprotoTCP, "exit"),
	}
	ins = append(ins, fillFromHelpers()...)
	ins = append(ins,
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, int32(common)),
		asm.Mov.Imm(asm.R2, int32(span)),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, int32(l.commonLo)),
		asm.FnProbeReadKernel.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
	)
	at := func(f sockField) field { return field{Offset: int(common) + f.Offset - l.commonLo, Size: f.Size} }
	ins = append(ins,
		asm.LoadMem(asm.R2, asm.RFP, int16(at(l.Family).Offset), asm.Half),
		asm.StoreMem(asm.RFP, stackRec+recFamily, asm.R2, asm.Half),
		asm.LoadMem(asm.R2, asm.RFP, int16(at(l.Dport).Offset), asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half), // ntohs, as the tracepoint does
		asm.StoreMem(asm.RFP, stackRec+recDport, asm.R2, asm.Half),
	)
	ins = append(ins, copyBytes(asm.RFP, recSaddr4, at(l.Saddr4))...)
	ins = append(ins, copyBytes(asm.RFP, recDaddr4, at(l.Daddr4))...)
	ins = append(ins, copyBytes(asm.RFP, recSaddr6, at(l.Saddr6))...)
	ins = append(ins, copyBytes(asm.RFP, recDaddr6, at(l.Daddr6))...)
	return append(ins, output(ring, drops)...)
}
