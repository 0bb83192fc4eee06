;; A handle_http that never returns: a loop with no call in it, for the
;; interrupt tests of every Config.Interrupt (no Go runtime, so it compiles in
;; microseconds in each mode).
(module
  (memory (export "memory") 1)
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_http") (param i32 i32) (result i64)
    (local $n i32)
    (loop $forever
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $forever))
    (i64.const 0)))
