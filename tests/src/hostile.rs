//! Hostile guests written in WAT, as wasmtime's own component tests do:
//! a component that imports the `database` interface and exports the
//! `handler`, whose `handle` body each test supplies.
//!
//! The core module offers helpers to the body: `$open` (the `default`
//! database; traps on error), `$begin (db) -> tx`, `$tx_exec (tx)` and
//! `$db_exec (db)` running the statement given to [`component`] (trapping
//! on error unless it is `$db_exec_lenient`), and `$respond (status) -> ptr`.

/// A component whose `handle` runs `body` (WAT instructions that leave the
/// response pointer on the stack), with `sql` as the statement the helpers run.
pub fn component(sql: &str, body: &str) -> String {
    let escaped: String = sql.bytes().map(|b| format!("\\{b:02x}")).collect();
    TEMPLATE
        .replace("{sql}", &escaped)
        .replace("{sql_len}", &sql.len().to_string())
        .replace("{body}", body)
}

/// `handle` opens the database, begins a transaction, runs `sql` in it and
/// then traps.
pub fn trap_in_transaction(sql: &str) -> String {
    component(
        sql,
        "(local.set $tx (call $begin (call $open))) (call $tx_exec (local.get $tx)) unreachable",
    )
}

/// `handle` begins a transaction and traps before running anything in it.
pub fn trap_after_begin() -> String {
    component(
        "select 1",
        "(local.set $tx (call $begin (call $open))) unreachable",
    )
}

/// `handle` begins a transaction, runs `sql` in it, then spins forever.
pub fn loop_in_transaction(sql: &str) -> String {
    component(
        sql,
        "(local.set $tx (call $begin (call $open))) (call $tx_exec (local.get $tx)) (loop (br 0)) unreachable",
    )
}

/// `handle` begins a transaction, runs `sql`, and returns 200 leaving it open.
pub fn return_in_transaction(sql: &str) -> String {
    component(
        sql,
        "(local.set $tx (call $begin (call $open))) (call $tx_exec (local.get $tx)) (call $respond (i32.const 200))",
    )
}

/// `handle` begins a transaction, runs `sql`, then grows memory until it fails.
pub fn memory_bomb_in_transaction(sql: &str) -> String {
    component(
        sql,
        "(local.set $tx (call $begin (call $open))) (call $tx_exec (local.get $tx)) \
         (loop (br_if 0 (i32.ne (memory.grow (i32.const 256)) (i32.const -1)))) (call $respond (i32.const 200))",
    )
}

/// `handle` opens database handles forever (the handle table has a cap).
pub fn handle_flood() -> String {
    component("select 1", "(loop (drop (call $open)) (br 0)) unreachable")
}

/// `handle` runs `sql` outside a transaction and answers 200.
pub fn execute(sql: &str) -> String {
    component(
        sql,
        "(call $db_exec (call $open)) (call $respond (i32.const 200))",
    )
}

const TEMPLATE: &str = r#"(component
(type $types-ty
  (instance
    (type (;0;) (record (field "year" s32) (field "month" u8) (field "day" u8)))
    (export (;1;) "date" (type (eq 0)))
    (type (;2;) (record (field "hour" u8) (field "minute" u8) (field "second" u8) (field "microsecond" u32)))
    (export (;3;) "time" (type (eq 2)))
    (type (;4;) (record (field "date" 1) (field "time" 3)))
    (export (;5;) "timestamp" (type (eq 4)))
    (type (;6;) (list u8))
    (type (;7;) (variant (case "null") (case "boolean" bool) (case "int16" s16) (case "int32" s32) (case "int64" s64) (case "float32" f32) (case "float64" f64) (case "text" string) (case "bytes" 6) (case "json" string) (case "uuid" string) (case "date" 1) (case "time" 3) (case "timestamp" 5) (case "timestamptz" 5) (case "numeric" string)))
    (export (;8;) "value" (type (eq 7)))
    (type (;9;) (enum "boolean" "int16" "int32" "int64" "float32" "float64" "text" "bytes" "json" "uuid" "date" "time" "timestamp" "timestamptz" "numeric" "other"))
    (export (;10;) "data-type" (type (eq 9)))
    (type (;11;) (record (field "name" string) (field "data-type" 10) (field "type-name" string)))
    (export (;12;) "column" (type (eq 11)))
    (type (;13;) (list 8))
    (export (;14;) "row" (type (eq 13)))
    (type (;15;) (list 12))
    (type (;16;) (list 14))
    (type (;17;) (record (field "columns" 15) (field "rows" 16)))
    (export (;18;) "row-set" (type (eq 17)))
    (type (;19;) (option string))
    (type (;20;) (record (field "code" string) (field "severity" string) (field "message" string) (field "detail" 19) (field "hint" 19)))
    (export (;21;) "db-error" (type (eq 20)))
    (type (;22;) (record (field "pool-size" u32) (field "max-overflow" u32) (field "checked-out" u32) (field "waiting" u32) (field "waited-ms" u64)))
    (export (;23;) "pool-timeout" (type (eq 22)))
    (type (;24;) (variant (case "query-failed" 21) (case "pool-timeout" 23) (case "connection-failed" string) (case "bad-parameter" string) (case "value-conversion" string) (case "not-allowed" string) (case "too-large" string) (case "timeout" string)))
    (export (;25;) "error" (type (eq 24)))
  )
)
  (import "tarn:postgres/types@0.1.0" (instance $types (type $types-ty)))
  (alias export $types "value" (type $value))
  (alias export $types "error" (type $error))
  (type $db-ty
    (instance
      (export (;0;) "database" (type (sub resource)))
      (export (;1;) "transaction" (type (sub resource)))
      (alias outer 1 $value (type (;2;)))
      (export (;3;) "value" (type (eq 2)))
      (alias outer 1 $error (type (;4;)))
      (export (;5;) "error" (type (eq 4)))
      (type (;6;) (enum "read-committed" "repeatable-read" "serializable"))
      (export (;7;) "isolation-level" (type (eq 6)))
      (type (;8;) (option u32))
      (type (;9;) (record (field "isolation" 7) (field "read-only" bool) (field "statement-timeout-ms" 8)))
      (export (;10;) "transaction-options" (type (eq 9)))
      (type (;11;) (own 0))
      (type (;12;) (result 11 (error 5)))
      (type (;13;) (func (param "name" string) (result 12)))
      (export "[static]database.open" (func (type 13)))
      (type (;14;) (borrow 0))
      (type (;15;) (list 3))
      (type (;16;) (result u64 (error 5)))
      (type (;17;) (func (param "self" 14) (param "sql" string) (param "params" 15) (result 16)))
      (export "[method]database.execute" (func (type 17)))
      (type (;18;) (own 1))
      (type (;19;) (result 18 (error 5)))
      (type (;20;) (func (param "self" 14) (param "options" 10) (result 19)))
      (export "[method]database.begin" (func (type 20)))
      (type (;21;) (borrow 1))
      (type (;22;) (func (param "self" 21) (param "sql" string) (param "params" 15) (result 16)))
      (export "[method]transaction.execute" (func (type 22)))
    )
  )
  (import "tarn:postgres/database@0.1.0" (instance $db (type $db-ty)))
  (alias export $db "[static]database.open" (func $open))
  (alias export $db "[method]database.begin" (func $begin))
  (alias export $db "[method]database.execute" (func $db_execute))
  (alias export $db "[method]transaction.execute" (func $tx_execute))

  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 32768))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.add
                    (i32.shr_u
                      (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
                      (i32.const 16))
                    (i32.const 1)))
                (i32.const -1))
            (then unreachable))))
      (local.get $p))
  )
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))

  (core func $open_l (canon lower (func $open) (memory $mem) (realloc $realloc) string-encoding=utf8))
  (core func $begin_l (canon lower (func $begin) (memory $mem) (realloc $realloc) string-encoding=utf8))
  (core func $db_execute_l (canon lower (func $db_execute) (memory $mem) (realloc $realloc) string-encoding=utf8))
  (core func $tx_execute_l (canon lower (func $tx_execute) (memory $mem) (realloc $realloc) string-encoding=utf8))
  (core instance $dbfuncs
    (export "open" (func $open_l))
    (export "begin" (func $begin_l))
    (export "db-execute" (func $db_execute_l))
    (export "tx-execute" (func $tx_execute_l)))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "db" "open" (func $open_import (param i32 i32 i32)))
    (import "db" "begin" (func $begin_import (param i32 i32 i32 i32 i32 i32)))
    (import "db" "db-execute" (func $db_execute_import (param i32 i32 i32 i32 i32 i32)))
    (import "db" "tx-execute" (func $tx_execute_import (param i32 i32 i32 i32 i32 i32)))
    (data (i32.const 100) "default")
    (data (i32.const 4096) "{sql}")
    ;; results land at 2048 (discriminant) / 2056 (payload)
    (func $open (result i32)
      (call $open_import (i32.const 100) (i32.const 7) (i32.const 2048))
      (if (i32.load8_u (i32.const 2048)) (then unreachable))
      (i32.load (i32.const 2056)))
    (func $begin (param $db i32) (result i32)
      (call $begin_import (local.get $db) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 2048))
      (if (i32.load8_u (i32.const 2048)) (then unreachable))
      (i32.load (i32.const 2056)))
    (func $tx_exec (param $tx i32)
      (call $tx_execute_import (local.get $tx) (i32.const 4096) (i32.const {sql_len}) (i32.const 0) (i32.const 0) (i32.const 2048))
      (if (i32.load8_u (i32.const 2048)) (then unreachable)))
    (func $db_exec (param $db i32)
      (call $db_execute_import (local.get $db) (i32.const 4096) (i32.const {sql_len}) (i32.const 0) (i32.const 0) (i32.const 2048))
      (if (i32.load8_u (i32.const 2048)) (then unreachable)))
    (func $respond (param $status i32) (result i32)
      (i32.store16 (i32.const 1024) (local.get $status))
      (i32.store (i32.const 1028) (i32.const 0))
      (i32.store (i32.const 1032) (i32.const 0))
      (i32.store (i32.const 1036) (i32.const 0))
      (i32.store (i32.const 1040) (i32.const 0))
      (i32.const 1024))
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $tx i32)
      {body})
  )
  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "db" (instance $dbfuncs))))

  (type $header (tuple string string))
  (type $headers (list $header))
  (type $bytes (list u8))
  (type $request (record (field "method" string) (field "path" string) (field "query" string) (field "headers" $headers) (field "body" $bytes)))
  (type $response (record (field "status" u16) (field "headers" $headers) (field "body" $bytes)))
  (type $handle-ty (func (param "req" $request) (result $response)))
  (alias core export $main "handle" (core func $handle_core))
  (func $handle (type $handle-ty) (canon lift (core func $handle_core) (memory $mem) (realloc $realloc) string-encoding=utf8))
  (component $Shim
    (type (;0;) (tuple string string))
    (type (;1;) (list 0))
    (type (;2;) (list u8))
    (type (;3;) (record (field "method" string) (field "path" string) (field "query" string) (field "headers" 1) (field "body" 2)))
    (import "import-type-request" (type (;4;) (eq 3)))
    (type (;5;) (record (field "status" u16) (field "headers" 1) (field "body" 2)))
    (import "import-type-response" (type (;6;) (eq 5)))
    (type (;7;) (func (param "req" 4) (result 6)))
    (import "import-func-handle" (func (;0;) (type 7)))
    (type (;8;) (tuple string string))
    (type (;9;) (list 8))
    (type (;10;) (list u8))
    (type (;11;) (record (field "method" string) (field "path" string) (field "query" string) (field "headers" 9) (field "body" 10)))
    (export (;12;) "request" (type 11))
    (type (;13;) (record (field "status" u16) (field "headers" 9) (field "body" 10)))
    (export (;14;) "response" (type 13))
    (type (;15;) (func (param "req" 12) (result 14)))
    (export (;1;) "handle" (func 0) (func (type 15)))
  )
  (instance $shim (instantiate $Shim
    (with "import-func-handle" (func $handle))
    (with "import-type-request" (type $request))
    (with "import-type-response" (type $response))))
  (export "tarn:postgres/handler@0.1.0" (instance $shim))
)"#;
