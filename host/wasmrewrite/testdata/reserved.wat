;; An app may not import the host's private yield function.
(module
  (import "jifu_internal" "yield" (func $y (result i32)))
  (memory (export "memory") 1)
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_http") (param i32 i32) (result i64) (drop (call $y)) (i64.const 0)))
