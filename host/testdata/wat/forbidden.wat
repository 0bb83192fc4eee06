;; Imports a function from outside the allowlist, a jifu_v1 function that does
;; not exist, a scoped function without its scope, and one with a wrong
;; signature; exports no allocator.
(module
  (import "env" "system" (func (param i32) (result i32)))
  (import "jifu_v1" "nope" (func (result i32)))
  (import "jifu_v1" "kv_get" (func (param i32 i32 i32 i32) (result i32)))
  (import "jifu_v1" "log" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "handle_http") (param i32 i32) (result i64) (i64.const 0)))
