;; handle_http executes unreachable.
(module
  (memory (export "memory") 1)
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_http") (param i32 i32) (result i64) unreachable))
