;; handle_http passes an out-of-bounds pointer to one host function, chosen by
;; the first letter of the request path (GET /a .. GET /o): the byte at
;; offset 13 of an encoded GET request. /z returns an out-of-bounds response
;; and any other path answers 200 "ok".
(module
  (import "jifu_v1" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "jifu_v1" "random" (func $random (param i32 i32) (result i32)))
  (import "jifu_v1" "config_get" (func $config_get (param i32 i32 i32 i32) (result i32)))
  (import "jifu_v1" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (import "jifu_v1" "kv_put" (func $kv_put (param i32 i32 i32 i32) (result i64)))
  (import "jifu_v1" "kv_delete" (func $kv_delete (param i32 i32) (result i32)))
  (import "jifu_v1" "kv_cas" (func $kv_cas (param i32 i32 i64 i32 i32) (result i64)))
  (import "jifu_v1" "kv_scan" (func $kv_scan (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "jifu_v1" "result_take" (func $result_take (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "key")
  (data (i32.const 2048) "\01\c8\00\00\00\00\00\02\00\00\00ok")
  (func (export "jifu_alloc") (param i32) (result i32) (i32.const 8192))
  (func (export "handle_http") (param $p i32) (param $n i32) (result i64)
    (block $done
      (block $z (block $o (block $n_ (block $m (block $l (block $k (block $j (block $i
      (block $h (block $g (block $f (block $e (block $d (block $c (block $b (block $a
        (br_table $a $b $c $d $e $f $g $h $i $j $k $l $m $n_ $o
                  $done $done $done $done $done $done $done $done $done $done $z $done
          (i32.sub (i32.load8_u offset=13 (local.get $p)) (i32.const 97))))
      ;; a: log message outside memory
      (drop (call $log (i32.const 1) (i32.const 0xFFFFFFF0) (i32.const 100))) (br $done))
      ;; b: random buffer outside memory
      (drop (call $random (i32.const 65530) (i32.const 100))) (br $done))
      ;; c: config_get key outside memory
      (drop (call $config_get (i32.const 0xFFFFFF00) (i32.const 8) (i32.const 100) (i32.const 10))) (br $done))
      ;; d: config_get output outside memory
      (drop (call $config_get (i32.const 16) (i32.const 3) (i32.const 65500) (i32.const 100))) (br $done))
      ;; e: kv_get key outside memory
      (drop (call $kv_get (i32.const 0xFFFFFF00) (i32.const 8) (i32.const 100) (i32.const 10))) (br $done))
      ;; f: kv_get output outside memory
      (drop (call $kv_get (i32.const 16) (i32.const 3) (i32.const 65500) (i32.const 100))) (br $done))
      ;; g: kv_put key outside memory
      (drop (call $kv_put (i32.const 0xFFFFFF00) (i32.const 8) (i32.const 16) (i32.const 3))) (br $done))
      ;; h: kv_put value outside memory
      (drop (call $kv_put (i32.const 16) (i32.const 3) (i32.const 65535) (i32.const 100))) (br $done))
      ;; i: kv_delete key outside memory
      (drop (call $kv_delete (i32.const 0xFFFFFF00) (i32.const 8))) (br $done))
      ;; j: kv_cas key outside memory
      (drop (call $kv_cas (i32.const 0xFFFFFF00) (i32.const 8) (i64.const 0) (i32.const 16) (i32.const 3))) (br $done))
      ;; k: kv_cas value outside memory
      (drop (call $kv_cas (i32.const 16) (i32.const 3) (i64.const 0) (i32.const 65535) (i32.const 100))) (br $done))
      ;; l: kv_scan prefix outside memory
      (drop (call $kv_scan (i32.const 0xFFFFFF00) (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 100) (i32.const 100))) (br $done))
      ;; m: kv_scan cursor outside memory
      (drop (call $kv_scan (i32.const 16) (i32.const 3) (i32.const 0xFFFFFF00) (i32.const 8) (i32.const 10) (i32.const 100) (i32.const 100))) (br $done))
      ;; n: kv_scan output outside memory
      (drop (call $kv_scan (i32.const 16) (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 65500) (i32.const 100))) (br $done))
      ;; o: result_take output outside memory
      (drop (call $result_take (i32.const 65500) (i32.const 100))) (br $done))
      ;; z: a response pointer outside memory
      (return (i64.or (i64.shl (i64.const 0xFFFF0000) (i64.const 32)) (i64.const 100))))
    (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const 13))))
