;; A handle_http written directly against ABI v1, no SDK: it stores
;; "neutral" under key "wat", reads it back with kv_get and answers 200 with
;; the value as the body. Proves the ABI is language neutral.
(module
  (import "jifu_v1" "kv_put" (func $kv_put (param i32 i32 i32 i32) (result i64)))
  (import "jifu_v1" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "wat")        ;; key
  (data (i32.const 32) "neutral")    ;; value
  ;; response header at 3000: version 1, status 200, 0 headers; body length at 3007
  (data (i32.const 3000) "\01\c8\00\00\00\00\00")
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 8192))
  (func (export "handle_http") (param $p i32) (param $n i32) (result i64)
    (local $len i32)
    (if (i64.lt_s (call $kv_put (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 7)) (i64.const 1))
      (then unreachable))
    ;; kv_get writes u64 version + value at 4096
    (local.set $len (call $kv_get (i32.const 16) (i32.const 3) (i32.const 4096) (i32.const 256)))
    (if (i32.lt_s (local.get $len) (i32.const 8)) (then unreachable))
    (i32.store (i32.const 3007) (i32.sub (local.get $len) (i32.const 8)))
    (memory.copy (i32.const 3011) (i32.const 4104) (i32.sub (local.get $len) (i32.const 8)))
    (i64.or
      (i64.shl (i64.const 3000) (i64.const 32))
      (i64.extend_i32_u (i32.add (i32.const 3) (local.get $len))))))
