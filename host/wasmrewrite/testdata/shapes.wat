;; Shapes the rewriter must keep working: an import before the defined
;; functions (indices shift), a start function, exports, a global initialised
;; with ref.func, active and passive element segments (indices and
;; expressions), call_indirect, ref.func, a loop with parameters, recursion,
;; bulk memory in a loop, and (wat2wasm --debug-names) a name section.
(module
  (type $i2i (func (param i32) (result i32)))
  (import "env" "tick" (func $tick))
  (memory (export "memory") 2)
  (table $t 4 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $double))
  (elem (table $t) (i32.const 0) func $double $square)
  (elem funcref (ref.func $double) (ref.null func))
  (elem declare func $square)
  (start $init)

  (func $init (global.set $started (i32.const 1)))
  (func $double (param i32) (result i32) (i32.add (local.get 0) (local.get 0)))
  (func $square (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))

  (func (export "started") (result i32) (global.get $started))

  ;; sum of 0..n-1 with a counting loop
  (func $sum (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))

  ;; the same through a loop with a parameter (multi-value block type)
  (func (export "sum_param") (param $n i32) (result i32)
    (local $i i32)
    (i32.const 0)
    (loop $next (param i32) (result i32)
      (local.get $i)
      (i32.add)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.get $i)
      (local.get $n)
      (i32.lt_u)
      (br_if $next (i32.eqz (i32.eqz)))))

  (func (export "indirect") (param $slot i32) (param $x i32) (result i32)
    (call_indirect (type $i2i) (local.get $x) (local.get $slot)))

  (func (export "via_ref") (param $x i32) (result i32)
    (table.set $t (i32.const 3) (ref.func $square))
    (call_indirect (type $i2i) (local.get $x) (i32.const 3)))

  (func (export "via_global") (param $x i32) (result i32)
    (table.set $t (i32.const 2) (global.get $fref))
    (call_indirect (type $i2i) (local.get $x) (i32.const 2)))

  (func (export "call_import") (call $tick))

  ;; calls itself twice: 2^n calls and no loop
  (func $fib (export "recurse") (param $n i32)
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then
        (call $fib (i32.sub (local.get $n) (i32.const 1)))
        (call $fib (i32.sub (local.get $n) (i32.const 1))))))

  (func (export "spin") (loop $forever (br $forever)))

  ;; n iterations of memory.fill over len bytes, then memory.copy once
  (func (export "fill") (param $n i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (memory.fill (i32.const 0) (i32.const 7) (local.get $len))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (memory.copy (i32.const 100) (i32.const 0) (i32.const 10))
    (i32.load8_u (i32.const 105)))
)
