// Package wasmrewrite instruments a WebAssembly module so that its host can
// interrupt it cheaply: a budget counter (a new mutable i32 global) is
// decremented at every loop head and function entry, and by one per KiB
// before every bulk memory operation (memory.fill, memory.copy,
// memory.init); when it reaches zero the code calls a private import,
// YieldModule.YieldName of type () -> i32, whose result is the next budget.
//
// The host implements yield: it checks the invocation's deadline and
// context and, when they passed, unwinds the guest (for example with
// wazero's sys.NewExitError). Because yield is an ordinary host call, the
// guest also returns to the Go runtime there, so the garbage collector and
// the scheduler can stop it: a guest looping in JIT code never holds up a
// stop-the-world for longer than one budget. This replaces wazero's
// WithCloseOnContextDone, which leaves native code at every loop back-edge
// (wazero issue #2466), at about 1/Budget of its cost.
//
//	out, err := wasmrewrite.Instrument(wasm, wasmrewrite.Options{Budget: 10000})
//	// link YieldModule.YieldName in the runtime, then compile out.Wasm
//
// Instrument parses the module itself and bounds its work and memory by the
// input's size (no count in the input is trusted to allocate); it refuses a
// module that already imports from YieldModule, so an app cannot reach the
// host's private function. It does not validate the module: the compiler
// that runs the result does, and an invalid input gives an invalid output.
//
// Check guards that compiler: wazero v1.12's decoder allocates by the counts
// a module declares before reading them, so a host should compile nothing
// Check refuses (in any interrupt mode).
package wasmrewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// The private import every instrumented module calls.
const (
	YieldModule = "jifu_internal"
	YieldName   = "yield"
)

// DefaultBudget is the number of loop iterations (or function entries, or
// KiB of bulk memory work) between two yields, chosen by measurement (see
// docs/BENCHMARKS.md, "Interrupt by yield").
const DefaultBudget = 10000

// Errors wrapped by Instrument's failures.
var (
	ErrMalformed = errors.New("wasmrewrite: malformed module")
	ErrReserved  = errors.New("wasmrewrite: module imports the host's reserved namespace " + YieldModule)
)

// Options tune Instrument.
type Options struct {
	// Budget is the counter's initial value; yield returns the next one.
	// Default DefaultBudget.
	Budget int32
}

// Result is an instrumented module.
type Result struct {
	Wasm      []byte
	Loops     int // loop heads instrumented
	Entries   int // function entries instrumented
	Bulk      int // bulk memory operations weighed
	Functions int // functions (bodies) in the module
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// order is each section's position in a module (datacount precedes code).
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secGlobal: 6,
	secExport: 7, secStart: 8, secElement: 9, secDataCount: 10, secCode: 11, secData: 12,
}

type section struct {
	id      byte
	content []byte
}

// module is what Instrument needs to know of the input.
type module struct {
	sections       []section
	types          int
	paramCounts    []int // per type
	yieldType      int   // index of an existing () -> i32 type, or -1
	importedFuncs  uint32
	importedGlobal uint32
	definedGlobals uint32
	funcTypes      []uint32 // per defined function
	mem64          bool
	reserved       bool // imports from YieldModule
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Instrument returns wasm with the budget checks inserted. See the package
// documentation.
func Instrument(wasm []byte, opts Options) (*Result, error) {
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	m, err := parse(wasm)
	if err != nil {
		return nil, err
	}
	in := &injection{
		counter:  m.importedGlobal + m.definedGlobals,
		yield:    m.importedFuncs,
		imported: m.importedFuncs,
		bulk:     !m.mem64,
	}
	yieldType := uint32(m.yieldType)
	if m.yieldType < 0 {
		yieldType = uint32(m.types)
	}
	res := &Result{}
	out := &writer{b: make([]byte, 0, len(wasm)+len(wasm)/8+64)}
	out.raw(header)

	// The sections Instrument adds to when present, and creates otherwise.
	have := map[byte]bool{}
	for _, s := range m.sections {
		have[s.id] = true
	}
	emitted := map[byte]bool{}
	emitMissingBefore := func(pos int) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !have[id] && !emitted[id] && order[id] < pos {
				emitted[id] = true
				out.section(id, extend(id, nil, m, in, yieldType, opts.Budget))
			}
		}
	}
	for _, s := range m.sections {
		if s.id != secCustom {
			emitMissingBefore(order[s.id])
		}
		var content []byte
		switch s.id {
		case secType, secImport, secGlobal:
			content, err = extendSection(s, m, in, yieldType, opts.Budget)
		case secExport:
			content, err = rewriteExports(s.content, in)
		case secStart:
			content, err = rewriteStart(s.content, in)
		case secElement:
			content, err = rewriteElements(s.content, in)
		case secCode:
			content, err = rewriteCode(s.content, m, in, res)
		case secCustom:
			content = rewriteCustom(s.content, in)
			if content == nil {
				continue // a name section that does not parse is dropped
			}
		default:
			content = s.content
		}
		if err != nil {
			return nil, err
		}
		out.section(s.id, content)
	}
	emitMissingBefore(math.MaxInt)
	res.Wasm = out.b
	return res, nil
}

// parse reads the sections and the counts and indices Instrument needs.
func parse(wasm []byte) (*module, error) {
	if len(wasm) < len(header) || !bytes.Equal(wasm[:4], header[:4]) {
		return nil, fmt.Errorf("%w: not a WebAssembly binary", ErrMalformed)
	}
	if !bytes.Equal(wasm[4:8], header[4:]) {
		return nil, fmt.Errorf("%w: binary format version %x, want 1", ErrMalformed, wasm[4:8])
	}
	r := &reader{b: wasm, off: len(header)}
	m := &module{yieldType: -1}
	last := 0
	for r.remaining() > 0 {
		id := r.byte()
		size := r.u32()
		content := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		if id != secCustom {
			pos, ok := order[id]
			if !ok {
				return nil, fmt.Errorf("%w: section %d", errUnsupportedSection, id)
			}
			if pos <= last {
				return nil, fmt.Errorf("%w: section %d out of order", ErrMalformed, id)
			}
			last = pos
		}
		m.sections = append(m.sections, section{id: id, content: content})
		var err error
		// Sections Instrument only copies or rewrites later are checked here
		// too: every count against the bytes it claims, so that the
		// compiler's decoder, which allocates by the declared counts, never
		// sees a decoder bomb (Check).
		none := &injection{imported: math.MaxUint32}
		switch id {
		case secCustom:
			err = checkCustom(content)
		case secTable:
			err = checkTables(content)
		case secExport:
			_, err = rewriteExports(content, none)
		case secElement:
			_, err = rewriteElements(content, none)
		case secData:
			err = checkData(content, none)
		case secDataCount:
			sr := &reader{b: content}
			sr.u32()
			err = sr.done()
		case secCode:
			err = checkCode(content)
		case secType:
			err = m.parseTypes(content)
		case secImport:
			err = m.parseImports(content)
		case secFunction:
			err = m.parseFunctions(content)
		case secMemory:
			err = m.parseMemories(content)
		case secGlobal:
			sr := &reader{b: content}
			m.definedGlobals = uint32(sr.count())
			for i := uint32(0); i < m.definedGlobals && sr.err == nil; i++ {
				sr.valType()
				sr.byte()
				none.rewriteExpr(sr, &writer{}, false, 0)
			}
			err = sr.done()
		}
		if err != nil {
			return nil, err
		}
	}
	if m.reserved {
		return nil, ErrReserved
	}
	return m, nil
}

// Check reports whether wasm is safe to hand to a compiler's decoder: every
// section, vector and name within the bytes it declares, at most MaxLocals
// locals per function, and no section this package does not know (such as
// the exception-handling proposal's tags). wazero v1.12 allocates by the
// declared counts before reading the elements (a 31-byte data section
// declaring 3.7 billion segments asks for 176 GB), so a host compiles
// nothing that did not pass Check. A module that imports from YieldModule
// fails with ErrReserved only when it passes every other check.
func Check(wasm []byte) error {
	_, err := parse(wasm)
	return err
}

// MaxLocals bounds the locals of one function, parameters included (the
// limit of V8, SpiderMonkey and wasmtime).
const MaxLocals = 50000

func checkCustom(content []byte) error {
	r := &reader{b: content}
	name := r.name()
	if r.err != nil {
		return r.err
	}
	if string(name) == "name" && rewriteCustom(content, &injection{imported: math.MaxUint32}) == nil {
		return fmt.Errorf("%w: the name section does not decode", ErrMalformed)
	}
	return nil
}

func checkTables(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		if t := r.byte(); r.err == nil && t != typeFuncref && t != typeExternref {
			r.fail("table of type %#x", t)
		}
		if minimum := r.limits(); r.err == nil && minimum > MaxTableElements {
			return fmt.Errorf("%w: table %d starts with %d elements, at most %d", ErrMalformed, i, minimum, MaxTableElements)
		}
	}
	return r.done()
}

// MaxTableElements bounds a table's initial size: wazero allocates it at
// instantiation, 8 bytes an element, outside the memory page limit. A Go
// guest's table holds a few thousand functions.
const MaxTableElements = 1 << 20

func checkData(content []byte, none *injection) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		switch flags := r.u32(); flags {
		case 0:
			none.rewriteExpr(r, &writer{}, false, 0)
		case 1:
		case 2:
			r.u32()
			none.rewriteExpr(r, &writer{}, false, 0)
		default:
			r.fail("data segment flags %d", flags)
		}
		r.name() // the bytes, bounded by the section
	}
	return r.done()
}

func checkCode(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		br := &reader{b: r.bytes(int(r.u32()))}
		groups := br.count()
		var locals uint64
		for j := 0; j < groups && br.err == nil; j++ {
			locals += uint64(br.u32())
			br.valType()
			if locals > MaxLocals {
				return fmt.Errorf("%w: function %d declares more than %d locals", ErrMalformed, i, MaxLocals)
			}
		}
		if br.err != nil {
			return br.err
		}
	}
	return r.done()
}

var errUnsupportedSection = fmt.Errorf("%w: unsupported section", ErrMalformed)

func (m *module) parseTypes(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		if form := r.byte(); r.err == nil && form != funcForm {
			r.fail("type form %#x (only function types are supported)", form)
		}
		params := r.count()
		for j := 0; j < params && r.err == nil; j++ {
			r.valType()
		}
		results := r.count()
		var first byte
		for j := 0; j < results && r.err == nil; j++ {
			if t := r.valType(); j == 0 {
				first = t
			}
		}
		m.paramCounts = append(m.paramCounts, params)
		if m.yieldType < 0 && params == 0 && results == 1 && first == typeI32 {
			m.yieldType = i
		}
	}
	m.types = n
	return r.done()
}

func (m *module) parseImports(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		mod := r.name()
		r.name()
		if r.err == nil && string(mod) == YieldModule {
			m.reserved = true
		}
		switch kind := r.byte(); kind {
		case 0:
			r.u32()
			m.importedFuncs++
		case 1:
			r.byte() // reference type
			r.limits()
		case 2:
			if r.remaining() > 0 && r.b[r.off]&4 != 0 {
				m.mem64 = true
			}
			r.limits()
		case 3:
			r.valType()
			r.byte()
			m.importedGlobal++
		default:
			r.fail("import kind %d", kind)
		}
	}
	return r.done()
}

func (m *module) parseFunctions(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		m.funcTypes = append(m.funcTypes, r.u32())
	}
	return r.done()
}

func (m *module) parseMemories(content []byte) error {
	r := &reader{b: content}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		if r.remaining() > 0 && r.b[r.off]&4 != 0 {
			m.mem64 = true
		}
		r.limits()
	}
	return r.done()
}

// done reports the reader's error, or one for bytes left over.
func (r *reader) done() error {
	if r.err == nil && r.remaining() != 0 {
		r.fail("%d bytes after the section's last entry", r.remaining())
	}
	return r.err
}

// extendSection appends the new type, import or global to a section.
func extendSection(s section, m *module, in *injection, yieldType uint32, budget int32) ([]byte, error) {
	r := &reader{b: s.content}
	n := r.count()
	raw := r.b[r.off:]
	if s.id == secGlobal {
		// Initialisers may hold ref.func: renumber them.
		w := &writer{}
		for i := 0; i < n && r.err == nil; i++ {
			w.byte(r.valType())
			w.byte(r.byte())
			in.rewriteExpr(r, w, false, 0)
		}
		if err := r.done(); err != nil {
			return nil, err
		}
		raw = w.b
	}
	if r.err != nil {
		return nil, r.err
	}
	return extend(s.id, &entries{count: n, raw: raw}, m, in, yieldType, budget), nil
}

// entries is a section's existing entries: their count and encoding.
type entries struct {
	count int
	raw   []byte
}

func extend(id byte, old *entries, m *module, in *injection, yieldType uint32, budget int32) []byte {
	if old == nil {
		old = &entries{}
	}
	w := &writer{}
	add := func(entry []byte) {
		w.u32(uint32(old.count + 1))
		w.raw(old.raw)
		w.raw(entry)
	}
	switch id {
	case secType:
		if m.yieldType >= 0 {
			w.u32(uint32(old.count))
			w.raw(old.raw)
			break
		}
		add([]byte{funcForm, 0, 1, typeI32})
	case secImport:
		e := &writer{}
		e.name([]byte(YieldModule))
		e.name([]byte(YieldName))
		e.byte(0)
		e.u32(yieldType)
		add(e.b)
	case secGlobal:
		e := []byte{typeI32, 1, opI32Const}
		e = appendSLEB(e, int64(budget))
		add(append(e, opEnd))
	}
	return w.b
}

func rewriteExports(content []byte, in *injection) ([]byte, error) {
	r := &reader{b: content}
	w := &writer{}
	n := r.count()
	w.u32(uint32(n))
	for i := 0; i < n && r.err == nil; i++ {
		w.name(r.name())
		kind := r.byte()
		idx := r.u32()
		if kind == 0 {
			idx = in.fn(idx)
		}
		w.byte(kind)
		w.u32(idx)
	}
	return w.b, r.done()
}

func rewriteStart(content []byte, in *injection) ([]byte, error) {
	r := &reader{b: content}
	idx := r.u32()
	w := &writer{}
	w.u32(in.fn(idx))
	return w.b, r.done()
}

func rewriteElements(content []byte, in *injection) ([]byte, error) {
	r := &reader{b: content}
	w := &writer{}
	n := r.count()
	w.u32(uint32(n))
	for i := 0; i < n && r.err == nil; i++ {
		flags := r.u32()
		w.u32(flags)
		if flags > 7 {
			r.fail("element segment flags %d", flags)
			break
		}
		if flags&3 == 2 { // explicit table index
			w.u32(r.u32())
		}
		if flags&1 == 0 { // active: offset expression
			in.rewriteExpr(r, w, false, 0)
		}
		if flags&3 != 0 { // element kind (0x00) or reference type
			w.byte(r.byte())
		}
		items := r.count()
		w.u32(uint32(items))
		for j := 0; j < items && r.err == nil; j++ {
			if flags&4 == 0 {
				w.u32(in.fn(r.u32()))
			} else {
				in.rewriteExpr(r, w, false, 0)
			}
		}
	}
	return w.b, r.done()
}

func rewriteCode(content []byte, m *module, in *injection, res *Result) ([]byte, error) {
	r := &reader{b: content}
	n := r.count()
	if r.err == nil && n != len(m.funcTypes) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrMalformed, n, len(m.funcTypes))
	}
	w := &writer{b: make([]byte, 0, len(content)+len(content)/8)}
	w.u32(uint32(n))
	body := &writer{}
	for i := 0; i < n && r.err == nil; i++ {
		size := r.u32()
		br := &reader{b: r.bytes(int(size))}
		if r.err != nil {
			break
		}
		// Locals: the scratch local for bulk checks is appended after them.
		var locals uint64
		if t := m.funcTypes[i]; int(t) < len(m.paramCounts) {
			locals = uint64(m.paramCounts[t])
		} else {
			return nil, fmt.Errorf("%w: function %d has type %d of %d", ErrMalformed, i, t, len(m.paramCounts))
		}
		groups := br.count()
		for j := 0; j < groups && br.err == nil; j++ {
			locals += uint64(br.u32())
			br.valType()
		}
		if br.err != nil {
			return nil, br.err
		}
		if locals >= math.MaxUint32 {
			return nil, fmt.Errorf("%w: function %d declares %d locals", ErrMalformed, i, locals)
		}
		localDecls := br.b[:br.off]
		body.b = body.b[:0]
		st := in.rewriteExpr(br, body, true, uint32(locals))
		if err := br.done(); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		res.Loops += st.loops
		res.Entries += st.entries
		res.Bulk += st.bulk
		res.Functions++
		f := &writer{}
		if st.bulk > 0 {
			f.u32(uint32(groups + 1))
			lr := &reader{b: localDecls}
			lr.count()
			f.raw(localDecls[lr.off:])
			f.u32(1)
			f.byte(typeI32)
		} else {
			f.raw(localDecls)
		}
		f.raw(body.b)
		w.u32(uint32(len(f.b)))
		w.raw(f.b)
	}
	return w.b, r.done()
}

// rewriteCustom renumbers the function indices of the name section (function
// names, local names, label names) and leaves other custom sections alone. It
// returns nil when the name section does not parse.
func rewriteCustom(content []byte, in *injection) []byte {
	r := &reader{b: content}
	name := r.name()
	if r.err != nil || string(name) != "name" {
		return content
	}
	w := &writer{}
	w.name(name)
	for r.remaining() > 0 && r.err == nil {
		id := r.byte()
		sub := &reader{b: r.bytes(int(r.u32()))}
		if r.err != nil {
			return nil
		}
		if id == 0 { // the module's name
			sub.name()
			if sub.done() != nil {
				return nil
			}
		}
		if id < 1 || id > 3 {
			w.section(id, sub.b)
			continue
		}
		sw := &writer{}
		n := sub.count()
		sw.u32(uint32(n))
		for i := 0; i < n && sub.err == nil; i++ {
			sw.u32(in.fn(sub.u32()))
			if id == 1 {
				sw.name(sub.name())
				continue
			}
			inner := sub.count() // local or label names of the function
			sw.u32(uint32(inner))
			for j := 0; j < inner && sub.err == nil; j++ {
				sw.u32(sub.u32())
				sw.name(sub.name())
			}
		}
		if sub.done() != nil {
			return nil
		}
		w.section(id, sw.b)
	}
	return w.b
}
