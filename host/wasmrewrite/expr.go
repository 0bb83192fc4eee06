package wasmrewrite

// Opcodes the rewriter reads or writes.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opEnd          = 0x0b
	opBrTable      = 0x0e
	opCall         = 0x10
	opReturnCall   = 0x12
	opLocalGet     = 0x20
	opLocalTee     = 0x22
	opGlobalGet    = 0x23
	opGlobalSet    = 0x24
	opI32Const     = 0x41
	opI32LeS       = 0x4c
	opI32Sub       = 0x6b
	opI32ShrU      = 0x76
	opRefFunc      = 0xd2
	prefixMisc     = 0xfc
	prefixSIMD     = 0xfd
	prefixAtomic   = 0xfe
	miscMemoryInit = 8
	miscMemoryCopy = 10
	miscMemoryFill = 11
)

// bulkShift converts the byte count of a bulk memory operation into budget
// units: one unit per KiB (2^10 bytes), about the cost of a loop iteration.
const bulkShift = 10

// injection holds the indices the inserted code refers to.
type injection struct {
	counter  uint32 // the budget global
	yield    uint32 // the yield import's function index
	imported uint32 // function indices at or above this shift by one
	bulk     bool   // weigh memory.fill/copy/init (false for 64-bit memories)
}

func (in *injection) fn(idx uint32) uint32 {
	if idx >= in.imported {
		return idx + 1
	}
	return idx
}

// appendCheck appends the loop-head check: counter -= 1; if counter <= 0 {
// counter = yield() }.
func (in *injection) appendCheck(b []byte) []byte {
	b = append(b, opGlobalGet)
	b = appendULEB(b, uint64(in.counter))
	b = append(b, opI32Const, 1, opI32Sub)
	return in.appendTail(b)
}

// appendBulkCheck appends the check before a bulk memory operation, whose
// byte count n is on top of the stack: scratch = n; counter -= n >> 10; if
// counter <= 0 { counter = yield() }. n stays on the stack.
func (in *injection) appendBulkCheck(b []byte, scratch uint32) []byte {
	b = append(b, opLocalTee)
	b = appendULEB(b, uint64(scratch))
	b = append(b, opGlobalGet)
	b = appendULEB(b, uint64(in.counter))
	b = append(b, opLocalGet)
	b = appendULEB(b, uint64(scratch))
	b = append(b, opI32Const, bulkShift, opI32ShrU, opI32Sub)
	return in.appendTail(b)
}

// appendTail stores the decremented counter (on the stack) and calls yield
// when it reached zero.
func (in *injection) appendTail(b []byte) []byte {
	c := appendULEB(nil, uint64(in.counter))
	b = append(b, opGlobalSet)
	b = append(b, c...)
	b = append(b, opGlobalGet)
	b = append(b, c...)
	b = append(b, opI32Const, 0, opI32LeS, opIf, blockEmpty, opCall)
	b = appendULEB(b, uint64(in.yield))
	b = append(b, opGlobalSet)
	b = append(b, c...)
	return append(b, opEnd)
}

// exprStats counts what rewriting one expression did.
type exprStats struct {
	loops, entries, bulk int
}

// rewriteExpr copies one expression from r to w up to and including its
// final end: a function body when instrument is set (checks at the entry, at
// every loop head and before bulk memory operations, using local scratch), a
// constant expression otherwise. Function indices are renumbered either way.
// It keeps no stack of blocks, only their depth, so hostile nesting costs
// nothing but the bytes it takes.
func (in *injection) rewriteExpr(r *reader, w *writer, instrument bool, scratch uint32) exprStats {
	var st exprStats
	if instrument && !reachesLoop(r.b[r.off:]) {
		// A function entry, unless a loop head is reached first on every
		// path without a call (the Go compiler's shape): bounds call-only
		// runaways such as exponential recursion.
		w.b = in.appendCheck(w.b)
		st.entries++
	}
	for depth := 1; depth > 0; {
		start := r.off
		op := r.byte()
		if r.err != nil {
			return st
		}
		switch {
		case op == opBlock || op == opIf:
			r.blockType()
			depth++
		case op == opLoop:
			r.blockType()
			depth++
			if instrument && r.err == nil {
				w.raw(r.b[start:r.off])
				w.b = in.appendCheck(w.b)
				st.loops++
				continue
			}
		case op == opEnd:
			depth--
		case op == opCall || op == opReturnCall || op == opRefFunc:
			idx := r.u32()
			if r.err != nil {
				return st
			}
			w.byte(op)
			w.u32(in.fn(idx))
			continue
		case op == opUnreachable || op == 0x01 || op == opElse || op == 0x0f || op == 0x1a || op == 0x1b ||
			(op >= 0x45 && op <= 0xc4) || op == 0xd1:
			// no immediates
		case op == 0x0c || op == 0x0d: // br, br_if
			r.u32()
		case op == opBrTable:
			n := r.count()
			for i := 0; i <= n && r.err == nil; i++ {
				r.u32()
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			n := r.count()
			for i := 0; i < n && r.err == nil; i++ {
				r.valType()
			}
		case op >= opLocalGet && op <= 0x26: // locals, globals, table.get/set
			r.u32()
		case op >= 0x28 && op <= 0x3e:
			r.memarg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			r.u32()
		case op == opI32Const:
			r.sleb(32)
		case op == 0x42:
			r.sleb(64)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null
			if t := r.byte(); r.err == nil && t != typeFuncref && t != typeExternref {
				r.fail("ref.null of type %#x", t)
			}
		case op == prefixMisc:
			sub := r.u32()
			switch {
			case sub <= 7: // saturating truncations
			case sub == miscMemoryInit || sub == 12 || sub == miscMemoryCopy || sub == 14:
				r.u32()
				r.u32()
			case sub == 9 || sub == miscMemoryFill || sub == 13 || (sub >= 15 && sub <= 17):
				r.u32()
			default:
				r.fail("unsupported opcode 0xfc %d", sub)
			}
			if r.err == nil && instrument && in.bulk && (sub == miscMemoryInit || sub == miscMemoryCopy || sub == miscMemoryFill) {
				w.b = in.appendBulkCheck(w.b, scratch)
				st.bulk++
			}
		case op == prefixSIMD:
			r.simd()
		case op == prefixAtomic:
			sub := r.u32()
			switch {
			case sub == 3: // atomic.fence
				if r.byte() != 0 {
					r.fail("atomic.fence flags")
				}
			case sub <= 2 || (sub >= 0x10 && sub <= 0x4e):
				r.memarg()
			default:
				r.fail("unsupported opcode 0xfe %d", sub)
			}
		default:
			r.fail("unsupported opcode %#x", op)
		}
		if r.err != nil {
			return st
		}
		w.raw(r.b[start:r.off])
	}
	return st
}

// blockType skips a block type: empty, one value type, or a type index
// (a non-negative signed LEB128 of at most 33 bits).
func (r *reader) blockType() {
	if r.remaining() == 0 {
		r.fail("unexpected end")
		return
	}
	if c := r.b[r.off]; c == blockEmpty || isValType(c) {
		r.off++
		return
	}
	if raw := r.sleb(33); r.err == nil && raw[len(raw)-1]&0x40 != 0 {
		r.fail("negative block type index")
	}
}

// memarg skips a memory argument: alignment (bit 6 announces a memory index,
// multi-memory), then the offset.
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.uleb(64)
}

// simd skips the immediates of a 0xfd-prefixed (fixed-width SIMD)
// instruction.
func (r *reader) simd() {
	sub := r.u32()
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load_zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load/store lane
		r.memarg()
		r.byte()
	case sub <= 0xff:
		// no immediates; opcodes the compiler does not know stay invalid
	default:
		r.fail("unsupported opcode 0xfd %d", sub)
	}
}

// reachesLoop reports whether code, a function body's instructions, reaches a
// loop head through straight-line code only (no branch, call or end before
// it), looking at most 64 instructions ahead. The Go compiler's functions
// start this way: a few local and global moves, blocks, then the loop that
// dispatches the function's resume points.
func reachesLoop(code []byte) bool {
	r := &reader{b: code}
	for range 64 {
		op := r.byte()
		switch {
		case r.err != nil:
			return false
		case op == opLoop:
			return true
		case op == opBlock:
			r.blockType()
		case op >= opLocalGet && op <= opGlobalSet:
			r.u32()
		case op >= 0x28 && op <= 0x3e:
			r.memarg()
		case op == opI32Const:
			r.sleb(32)
		case op == 0x42:
			r.sleb(64)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0x01 || op == 0x1a || (op >= 0x45 && op <= 0xc4):
		default:
			return false
		}
	}
	return false
}
