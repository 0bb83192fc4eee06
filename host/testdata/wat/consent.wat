;; handle_http calls jifu_v1.probe, a test-only host function behind a
;; consent-requiring scope, and answers 200 with its i32 result (4 bytes,
;; little-endian) as the body.
(module
  (import "jifu_v1" "probe" (func $probe (result i32)))
  (memory (export "memory") 1)
  ;; version 1, status 200, 0 headers, body length 4
  (data (i32.const 2048) "\01\c8\00\00\00\00\00\04\00\00\00")
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 8192))
  (func (export "handle_http") (param i32 i32) (result i64)
    (i32.store (i32.const 2059) (call $probe))
    (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const 15))))
