package connwatch

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// Kernel constants the program filters on.
const (
	ipprotoTCP  = 6 // IPPROTO_TCP
	tcpSynSent  = 2 // TCP_SYN_SENT, include/net/tcp_states.h
	maxCtxBytes = 8192
	// A tracepoint program may read its context from offset 8 on (the
	// common_* header before it is off limits), at offsets aligned to the
	// size read, up to PERF_MAX_TRACE_SIZE: kernel/trace/bpf_trace.c,
	// tp_prog_is_valid_access.
	minCtxOffset = 8
)

// tpFields are the fields the program reads, with the sizes it accepts.
// protocol and family are copied by value whatever their integer width;
// the others must have the width the record gives them.
var tpFields = []struct {
	name  string
	sizes []int
}{
	{"newstate", []int{4}},
	{"protocol", []int{1, 2, 4}},
	{"family", []int{1, 2, 4}},
	{"dport", []int{2}},
	{"saddr", []int{4}},
	{"daddr", []int{4}},
	{"saddr_v6", []int{16}},
	{"daddr_v6", []int{16}},
}

// checkFormat verifies that the tracepoint has every field the program
// reads, with a size it handles, where a tracepoint program may read it.
func checkFormat(f format) error {
	for _, want := range tpFields {
		fl, ok := f[want.name]
		if !ok {
			return fmt.Errorf("tracepoint %s/%s has no field %q", tpGroup, tpName, want.name)
		}
		sizeOK := false
		for _, s := range want.sizes {
			sizeOK = sizeOK || fl.Size == s
		}
		if !sizeOK {
			return fmt.Errorf("tracepoint field %q is %d bytes, expected one of %v", want.name, fl.Size, want.sizes)
		}
		if fl.Offset < minCtxOffset || fl.Offset+fl.Size > maxCtxBytes {
			return fmt.Errorf("tracepoint field %q at offset %d is outside what a BPF program may read", want.name, fl.Offset)
		}
		if fl.Size <= 8 && fl.Size&(fl.Size-1) == 0 && fl.Offset%fl.Size != 0 {
			return fmt.Errorf("tracepoint field %q at offset %d is not aligned to its size %d", want.name, fl.Offset, fl.Size)
		}
	}
	return nil
}

// Ring buffer flags and queries (enum in include/uapi/linux/bpf.h).
const (
	bpfRBNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	bpfRBForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
	bpfRBAvailData   = 0 // BPF_RB_AVAIL_DATA
)

// wakeBytes is how much unread data makes the program wake the reader.
// Below it the program does not wake anyone and Run polls every
// pollInterval instead: by default bpf_ringbuf_output wakes a reader that
// has caught up at every record, and on a 2-core VM that wakeup more than
// doubled the cost of a refused connect() (16 µs → 37 µs,
// BenchmarkConnectOverhead). A quarter of the ring leaves room for the
// reader to wake before it fills.
const wakeBytes = ringBytes / 4

// Stack frame: the record at fp-recordSize, the drop counter's key below.
const (
	stackRec = -recordSize
	stackKey = stackRec - 8
)

// program assembles the BPF program for the tracepoint layout f, which
// checkFormat has accepted. ring is the ring buffer map's fd, drops an
// array map of one u64 counting records the ring had no room for.
//
//	if ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_SYN_SENT: return 0
//	rec = {0}; fill it from helpers and ctx fields
//	flags = BPF_RB_NO_WAKEUP
//	if bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeBytes: flags = BPF_RB_FORCE_WAKEUP
//	if bpf_ringbuf_output(ring, &rec, sizeof rec, flags) != 0: drops[0]++
//	return 0
func program(f format, ring, drops int) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // R6: ctx, kept across calls
	}
	ins = append(ins, load(asm.R2, f["protocol"])...)
	ins = append(ins, asm.JNE.Imm(asm.R2, ipprotoTCP, "exit"))
	ins = append(ins, load(asm.R2, f["newstate"])...)
	ins = append(ins, asm.JNE.Imm(asm.R2, tcpSynSent, "exit"))

	ins = append(ins, fillFromHelpers()...)
	ins = append(ins, load(asm.R2, f["family"])...)
	ins = append(ins, asm.StoreMem(asm.RFP, stackRec+recFamily, asm.R2, asm.Half))
	ins = append(ins, load(asm.R2, f["dport"])...)
	ins = append(ins, asm.StoreMem(asm.RFP, stackRec+recDport, asm.R2, asm.Half))
	ins = append(ins, copyBytes(asm.R6, recSaddr4, f["saddr"])...)
	ins = append(ins, copyBytes(asm.R6, recDaddr4, f["daddr"])...)
	ins = append(ins, copyBytes(asm.R6, recSaddr6, f["saddr_v6"])...)
	ins = append(ins, copyBytes(asm.R6, recDaddr6, f["daddr_v6"])...)
	return append(ins, output(ring, drops)...)
}

// fillFromHelpers zeroes the record on the stack, sets its magic, and
// fills in what helpers give: time, process, user, cgroup, comm. It keeps
// R6 and R7.
func fillFromHelpers() asm.Instructions {
	// The verifier wants the whole record written before a helper reads it.
	var ins asm.Instructions
	ins = append(ins, asm.Mov.Imm(asm.R2, 0))
	for off := 0; off < recordSize; off += 8 {
		ins = append(ins, asm.StoreMem(asm.RFP, int16(stackRec+off), asm.R2, asm.DWord))
	}
	ins = append(ins, asm.StoreImm(asm.RFP, stackRec+recMagic, magic, asm.Word))
	for _, h := range []struct {
		fn  asm.BuiltinFunc
		off int16
	}{
		{asm.FnKtimeGetBootNs, recTime},
		{asm.FnGetCurrentPidTgid, recPidTgid},
		{asm.FnGetCurrentUidGid, recUidGid},
		{asm.FnGetCurrentCgroupId, recCgroup},
	} {
		ins = append(ins, h.fn.Call(), asm.StoreMem(asm.RFP, stackRec+h.off, asm.R0, asm.DWord))
	}
	return append(ins,
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackRec+recComm),
		asm.Mov.Imm(asm.R2, commLen),
		asm.FnGetCurrentComm.Call(),
	)
}

// output writes the record to the ring, waking the reader only when the
// ring is filling up, counts a record the ring had no room for, and
// returns 0. It ends with the "exit" label the programs jump to.
func output(ring, drops int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, ring),
		asm.Mov.Imm(asm.R2, bpfRBAvailData),
		asm.FnRingbufQuery.Call(),
		asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
		asm.JLT.Imm(asm.R0, wakeBytes, "output"),
		asm.Mov.Imm(asm.R4, bpfRBForceWakeup),

		asm.LoadMapPtr(asm.R1, ring).WithSymbol("output"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackRec),
		asm.Mov.Imm(asm.R3, recordSize),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),

		asm.StoreImm(asm.RFP, stackKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, drops),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	}
}

// load reads an integer field of the context into dst, zero-extended.
func load(dst asm.Register, fl field) asm.Instructions {
	return asm.Instructions{asm.LoadMem(dst, asm.R6, int16(fl.Offset), sizeOf(fl.Size))}
}

// copyBytes copies a byte-array field at fl.Offset from base (the context
// in R6, or the stack) into the record at recOff, in the widest loads its
// offset's alignment allows.
func copyBytes(base asm.Register, recOff int, fl field) asm.Instructions {
	var ins asm.Instructions
	for done := 0; done < fl.Size; {
		n := 8
		for (fl.Offset+done)%n != 0 || (recOff+done)%n != 0 || done+n > fl.Size {
			n /= 2
		}
		ins = append(ins,
			asm.LoadMem(asm.R2, base, int16(fl.Offset+done), sizeOf(n)),
			asm.StoreMem(asm.RFP, int16(stackRec+recOff+done), asm.R2, sizeOf(n)),
		)
		done += n
	}
	return ins
}

func sizeOf(n int) asm.Size {
	switch n {
	case 1:
		return asm.Byte
	case 2:
		return asm.Half
	case 4:
		return asm.Word
	default:
		return asm.DWord
	}
}
