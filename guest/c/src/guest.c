// tarn's sample guest in C: the same endpoints and JSON as the Rust guest
// (guest/rust/README.md), on wit-bindgen's C bindings. One fresh instance
// serves one request, so memory is malloc'd and mostly never freed.

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_guest_c.h"
#include "json.h"

typedef http_guest_c_string_t wstr;
typedef tarn_postgres_types_value_t value_t;
typedef tarn_postgres_types_error_t dberr_t;
typedef tarn_postgres_types_row_set_t rowset_t;
typedef tarn_postgres_types_row_t row_t;
typedef tarn_postgres_types_list_column_t columns_t;
typedef tarn_postgres_database_list_value_t params_t;
typedef tarn_postgres_database_own_database_t db_t;
typedef tarn_postgres_database_own_transaction_t tx_t;
typedef exports_tarn_postgres_handler_request_t request_t;
typedef exports_tarn_postgres_handler_response_t response_t;

#define DEFAULT_DATABASE "default"
#define DEFAULT_STATEMENT_TIMEOUT_MS 5000u
#define MAX_TITLE_CHARS 200

// ---------------------------------------------------------------------------
// Small helpers

static wstr W(const char *s) { return (wstr){(uint8_t *)s, strlen(s)}; }

static char *dupn(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static bool wstr_eq(wstr s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Whether `s` is blank (only whitespace).
static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return false;
    return true;
}

static char *trim(char *s) {
    while (is_space(*s)) s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1])) s[--n] = 0;
    return s;
}

static size_t utf8_chars(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

// ---------------------------------------------------------------------------
// Settings

typedef struct {
    char *database;
    bool has_timeout;
    uint32_t timeout_ms;
} settings_t;

static settings_t read_settings(void) {
    settings_t s = {DEFAULT_DATABASE, true, DEFAULT_STATEMENT_TIMEOUT_MS};
    http_guest_c_list_tuple2_string_string_t env;
    wasi_cli_environment_get_environment(&env);
    for (size_t i = 0; i < env.len; i++) {
        wstr k = env.ptr[i].f0, v = env.ptr[i].f1;
        if (wstr_eq(k, "TARN_DATABASE")) {
            char *d = trim(dupn(v.ptr, v.len));
            s.database = *d ? d : DEFAULT_DATABASE;
        } else if (wstr_eq(k, "QUERY_STATEMENT_TIMEOUT_MS")) {
            char *t = trim(dupn(v.ptr, v.len));
            if (*t == '+') t++;
            s.has_timeout = true;
            s.timeout_ms = DEFAULT_STATEMENT_TIMEOUT_MS;
            if (all_digits(t)) {
                errno = 0;
                unsigned long long ms = strtoull(t, NULL, 10);
                if (errno == 0 && ms <= 0xFFFFFFFFull) {
                    s.timeout_ms = (uint32_t)ms;
                    s.has_timeout = ms != 0; // 0: no statement timeout
                }
            }
        }
    }
    return s;
}

// ---------------------------------------------------------------------------
// Responses

static void add_header(response_t *ret, const char *name, const char *value) {
    size_t n = ret->headers.len + 1;
    ret->headers.ptr = realloc(ret->headers.ptr, n * sizeof *ret->headers.ptr);
    if (!ret->headers.ptr) abort();
    http_guest_c_string_dup(&ret->headers.ptr[n - 1].f0, name);
    http_guest_c_string_dup(&ret->headers.ptr[n - 1].f1, value);
    ret->headers.len = n;
}

// Sets status, content-type and body (the response owns body->ptr).
static void respond(response_t *ret, uint16_t status, buf *body) {
    ret->status = status;
    ret->headers.ptr = NULL;
    ret->headers.len = 0;
    add_header(ret, "content-type", "application/json");
    ret->body.ptr = (uint8_t *)body->ptr;
    ret->body.len = body->len;
}

static void respond_error(response_t *ret, uint16_t status, const char *message) {
    buf b = {0};
    buf_str(&b, "{\"error\":");
    buf_json_cstr(&b, message);
    buf_str(&b, "}");
    respond(ret, status, &b);
}

static void json_field_wstr(buf *b, const char *key, wstr v) {
    buf_fmt(b, ",\"%s\":", key);
    buf_json_string(b, (const char *)v.ptr, v.len);
}

static const char *KINDS[] = {"query-failed", "pool-timeout", "connection-failed", "bad-parameter",
                              "value-conversion", "not-allowed", "too-large", "timeout"};
static const uint16_t STATUSES[] = {400, 503, 503, 400, 400, 403, 400, 504};

// The message of any database error (a string case's payload).
static wstr error_message(const dberr_t *e) {
    switch (e->tag) {
    case TARN_POSTGRES_TYPES_ERROR_QUERY_FAILED: return e->val.query_failed.message;
    case TARN_POSTGRES_TYPES_ERROR_POOL_TIMEOUT: return W("timed out waiting for a database connection");
    case TARN_POSTGRES_TYPES_ERROR_CONNECTION_FAILED: return e->val.connection_failed;
    case TARN_POSTGRES_TYPES_ERROR_BAD_PARAMETER: return e->val.bad_parameter;
    case TARN_POSTGRES_TYPES_ERROR_VALUE_CONVERSION: return e->val.value_conversion;
    case TARN_POSTGRES_TYPES_ERROR_NOT_ALLOWED: return e->val.not_allowed;
    case TARN_POSTGRES_TYPES_ERROR_TOO_LARGE: return e->val.too_large;
    default: return e->val.timeout;
    }
}

static void respond_db_error(response_t *ret, const dberr_t *e) {
    buf b = {0};
    wstr msg = error_message(e);
    buf_str(&b, "{\"error\":");
    buf_json_string(&b, (const char *)msg.ptr, msg.len);
    if (e->tag == TARN_POSTGRES_TYPES_ERROR_QUERY_FAILED) {
        const tarn_postgres_types_db_error_t *d = &e->val.query_failed;
        json_field_wstr(&b, "code", d->code);
        json_field_wstr(&b, "severity", d->severity);
        if (d->detail.is_some) json_field_wstr(&b, "detail", d->detail.val);
        if (d->hint.is_some) json_field_wstr(&b, "hint", d->hint.val);
    } else if (e->tag == TARN_POSTGRES_TYPES_ERROR_POOL_TIMEOUT) {
        const tarn_postgres_types_pool_timeout_t *p = &e->val.pool_timeout;
        buf_fmt(&b, ",\"pool_size\":%u,\"max_overflow\":%u,\"checked_out\":%u,\"waiting\":%u,\"waited_ms\":%llu",
                p->pool_size, p->max_overflow, p->checked_out, p->waiting, (unsigned long long)p->waited_ms);
    }
    uint8_t tag = e->tag < 8 ? e->tag : 2;
    buf_str(&b, ",\"kind\":");
    buf_json_cstr(&b, KINDS[tag]);
    buf_str(&b, "}");
    respond(ret, STATUSES[tag], &b);
    if (e->tag == TARN_POSTGRES_TYPES_ERROR_POOL_TIMEOUT) add_header(ret, "retry-after", "1");
}

static bool is_code(const dberr_t *e, const char *code) {
    return e->tag == TARN_POSTGRES_TYPES_ERROR_QUERY_FAILED && wstr_eq(e->val.query_failed.code, code);
}

// ---------------------------------------------------------------------------
// Values

// JSON parameter → value: null → null, bool → boolean, integer → int64
// (above i64 up to u64 → numeric, exact; beyond → float64), other number →
// float64, string → text, array/object → json (its compact text).
static value_t param_from_json(const jvalue *v) {
    value_t p;
    memset(&p, 0, sizeof p);
    switch (v->type) {
    case J_NULL: p.tag = TARN_POSTGRES_TYPES_VALUE_NULL; break;
    case J_BOOL:
        p.tag = TARN_POSTGRES_TYPES_VALUE_BOOLEAN;
        p.val.boolean = v->boolean;
        break;
    case J_NUMBER:
        if (json_is_integer(v)) {
            errno = 0;
            long long i = strtoll(v->str, NULL, 10);
            if (errno == 0) {
                p.tag = TARN_POSTGRES_TYPES_VALUE_INT64;
                p.val.int64 = i;
                break;
            }
            if (v->str[0] != '-') {
                errno = 0;
                (void)strtoull(v->str, NULL, 10);
                if (errno == 0) {
                    p.tag = TARN_POSTGRES_TYPES_VALUE_NUMERIC;
                    p.val.numeric = (wstr){(uint8_t *)v->str, v->len};
                    break;
                }
            }
        }
        p.tag = TARN_POSTGRES_TYPES_VALUE_FLOAT64;
        p.val.float64 = strtod(v->str, NULL);
        break;
    case J_STRING:
        p.tag = TARN_POSTGRES_TYPES_VALUE_TEXT;
        p.val.text = (wstr){(uint8_t *)v->str, v->len};
        break;
    default: {
        buf b = {0};
        buf_json_value(&b, v);
        p.tag = TARN_POSTGRES_TYPES_VALUE_JSON;
        p.val.json = (wstr){(uint8_t *)b.ptr, b.len};
    }
    }
    return p;
}

static void fmt_date(buf *b, const tarn_postgres_types_date_t *d) {
    if (d->year < 0) buf_fmt(b, "-%04lld", -(long long)d->year);
    else buf_fmt(b, "%04d", (int)d->year);
    buf_fmt(b, "-%02u-%02u", d->month, d->day);
}

static void fmt_time(buf *b, const tarn_postgres_types_time_t *t) {
    buf_fmt(b, "%02u:%02u:%02u", t->hour, t->minute, t->second);
    if (t->microsecond) buf_fmt(b, ".%06u", (unsigned)t->microsecond);
}

static void value_to_json(buf *b, const value_t *v) {
    static const char hex[] = "0123456789abcdef";
    switch (v->tag) {
    case TARN_POSTGRES_TYPES_VALUE_NULL: buf_str(b, "null"); break;
    case TARN_POSTGRES_TYPES_VALUE_BOOLEAN: buf_str(b, v->val.boolean ? "true" : "false"); break;
    case TARN_POSTGRES_TYPES_VALUE_INT16: buf_fmt(b, "%d", v->val.int16); break;
    case TARN_POSTGRES_TYPES_VALUE_INT32: buf_fmt(b, "%d", (int)v->val.int32); break;
    case TARN_POSTGRES_TYPES_VALUE_INT64: buf_fmt(b, "%lld", (long long)v->val.int64); break;
    case TARN_POSTGRES_TYPES_VALUE_FLOAT32: buf_float(b, v->val.float32); break;
    case TARN_POSTGRES_TYPES_VALUE_FLOAT64: buf_double(b, v->val.float64); break;
    case TARN_POSTGRES_TYPES_VALUE_TEXT:
    case TARN_POSTGRES_TYPES_VALUE_UUID:
    case TARN_POSTGRES_TYPES_VALUE_NUMERIC:
        // text, uuid and numeric share the string layout
        buf_json_string(b, (const char *)v->val.text.ptr, v->val.text.len);
        break;
    case TARN_POSTGRES_TYPES_VALUE_BYTES: {
        buf s = {0};
        buf_raw(&s, "\\x", 2);
        for (size_t i = 0; i < v->val.bytes.len; i++) {
            char h[2] = {hex[v->val.bytes.ptr[i] >> 4], hex[v->val.bytes.ptr[i] & 15]};
            buf_raw(&s, h, 2);
        }
        buf_json_string(b, s.ptr, s.len);
        free(s.ptr);
        break;
    }
    case TARN_POSTGRES_TYPES_VALUE_JSON: {
        const char *err;
        jvalue *j = json_parse((const char *)v->val.json.ptr, v->val.json.len, &err);
        if (j) buf_json_value(b, j);
        else buf_json_string(b, (const char *)v->val.json.ptr, v->val.json.len);
        break;
    }
    case TARN_POSTGRES_TYPES_VALUE_DATE:
        buf_raw(b, "\"", 1);
        fmt_date(b, &v->val.date);
        buf_raw(b, "\"", 1);
        break;
    case TARN_POSTGRES_TYPES_VALUE_TIME:
        buf_raw(b, "\"", 1);
        fmt_time(b, &v->val.time);
        buf_raw(b, "\"", 1);
        break;
    case TARN_POSTGRES_TYPES_VALUE_TIMESTAMP:
    case TARN_POSTGRES_TYPES_VALUE_TIMESTAMPTZ:
        buf_raw(b, "\"", 1);
        fmt_date(b, &v->val.timestamp.date);
        buf_raw(b, "T", 1);
        fmt_time(b, &v->val.timestamp.time);
        if (v->tag == TARN_POSTGRES_TYPES_VALUE_TIMESTAMPTZ) buf_raw(b, "Z", 1);
        buf_raw(b, "\"", 1);
        break;
    default: buf_str(b, "null");
    }
}

static void row_to_object(buf *b, const columns_t *cols, const row_t *row) {
    buf_raw(b, "{", 1);
    for (size_t i = 0; i < cols->len && i < row->len; i++) {
        if (i) buf_raw(b, ",", 1);
        buf_json_string(b, (const char *)cols->ptr[i].name.ptr, cols->ptr[i].name.len);
        buf_raw(b, ":", 1);
        value_to_json(b, &row->ptr[i]);
    }
    buf_raw(b, "}", 1);
}

// ---------------------------------------------------------------------------
// Request bodies

// Parses the body as a JSON object, or responds 400 and returns NULL.
static jvalue *json_object(const request_t *req, response_t *ret) {
    const char *err = "not UTF-8";
    jvalue *v = NULL;
    if (utf8_valid(req->body.ptr, req->body.len))
        v = json_parse((const char *)req->body.ptr, req->body.len, &err);
    if (!v) {
        char msg[128];
        snprintf(msg, sizeof msg, "invalid JSON body: %s", err);
        respond_error(ret, 400, msg);
        return NULL;
    }
    if (v->type != J_OBJECT) {
        respond_error(ret, 400, "request body must be a JSON object");
        return NULL;
    }
    return v;
}

// The string member `key`, or responds 400 and returns NULL.
static jvalue *string_field(jvalue *obj, const char *key, response_t *ret) {
    jvalue *v = json_get(obj, key);
    char msg[64];
    if (!v) snprintf(msg, sizeof msg, "missing `%s`", key);
    else if (v->type != J_STRING) snprintf(msg, sizeof msg, "`%s` must be a string", key);
    else return v;
    respond_error(ret, 400, msg);
    return NULL;
}

static bool open_db(const settings_t *s, db_t *db, response_t *ret) {
    dberr_t err;
    wstr name = W(s->database);
    if (tarn_postgres_database_static_database_open(&name, db, &err)) return true;
    respond_db_error(ret, &err);
    return false;
}

static tarn_postgres_database_transaction_options_t tx_options(const settings_t *s, bool read_only) {
    tarn_postgres_database_transaction_options_t o;
    o.isolation = TARN_POSTGRES_DATABASE_ISOLATION_LEVEL_READ_COMMITTED;
    o.read_only = read_only;
    o.statement_timeout_ms.is_some = s->has_timeout;
    o.statement_timeout_ms.val = s->timeout_ms;
    return o;
}

// ---------------------------------------------------------------------------
// Seed endpoints

static void handle_query(const settings_t *s, const request_t *req, response_t *ret) {
    jvalue *body = json_object(req, ret);
    if (!body) return;
    jvalue *sql = string_field(body, "sql", ret);
    if (!sql) return;
    if (blank(sql->str, sql->len)) return respond_error(ret, 400, "`sql` must not be empty");
    jvalue *p = json_get(body, "params");
    params_t params = {NULL, 0};
    if (p && p->type == J_ARRAY) {
        params.len = p->count;
        params.ptr = calloc(p->count ? p->count : 1, sizeof(value_t));
        for (size_t i = 0; i < p->count; i++) params.ptr[i] = param_from_json(p->items[i]);
    } else if (p && p->type != J_NULL) {
        return respond_error(ret, 400, "`params` must be an array");
    }

    db_t db;
    if (!open_db(s, &db, ret)) return;
    tarn_postgres_database_borrow_database_t bdb = tarn_postgres_database_borrow_database(db);
    tarn_postgres_database_transaction_options_t opts = tx_options(s, true);
    tx_t tx;
    dberr_t err, ignored;
    if (!tarn_postgres_database_method_database_begin(bdb, &opts, &tx, &err))
        return respond_db_error(ret, &err);
    rowset_t rs;
    wstr wsql = {(uint8_t *)sql->str, sql->len};
    bool ok = tarn_postgres_database_method_transaction_query(tarn_postgres_database_borrow_transaction(tx),
                                                              &wsql, &params, &rs, &err);
    // Read only: nothing to commit; a failed rollback does not change the answer.
    (void)tarn_postgres_database_static_transaction_rollback(tx, &ignored);
    tarn_postgres_database_database_drop_own(db);
    if (!ok) return respond_db_error(ret, &err);

    buf b = {0};
    buf_str(&b, "{\"columns\":[");
    for (size_t i = 0; i < rs.columns.len; i++) {
        if (i) buf_raw(&b, ",", 1);
        buf_json_string(&b, (const char *)rs.columns.ptr[i].name.ptr, rs.columns.ptr[i].name.len);
    }
    buf_str(&b, "],\"rows\":[");
    for (size_t r = 0; r < rs.rows.len; r++) {
        if (r) buf_raw(&b, ",", 1);
        buf_raw(&b, "[", 1);
        for (size_t c = 0; c < rs.rows.ptr[r].len; c++) {
            if (c) buf_raw(&b, ",", 1);
            value_to_json(&b, &rs.rows.ptr[r].ptr[c]);
        }
        buf_raw(&b, "]", 1);
    }
    buf_fmt(&b, "],\"row_count\":%zu}", rs.rows.len);
    respond(ret, 200, &b);
}

static void handle_health_db(const settings_t *s, response_t *ret) {
    db_t db;
    dberr_t err;
    wstr name = W(s->database);
    buf b = {0};
    if (!tarn_postgres_database_static_database_open(&name, &db, &err)) {
        wstr msg = error_message(&err);
        buf_str(&b, "{\"database_healthy\":false,\"status\":\"disconnected\",\"error\":");
        buf_json_string(&b, (const char *)msg.ptr, msg.len);
        buf_str(&b, "}");
        return respond(ret, 503, &b);
    }
    tarn_postgres_database_health_t h;
    tarn_postgres_database_method_database_health(tarn_postgres_database_borrow_database(db), &h);
    tarn_postgres_database_database_drop_own(db);
    if (h.healthy) {
        buf_str(&b, "{\"database_healthy\":true,\"status\":\"connected\"}");
        return respond(ret, 200, &b);
    }
    buf_str(&b, "{\"database_healthy\":false,\"status\":\"disconnected\",\"error\":");
    if (h.error.is_some && !blank((const char *)h.error.val.ptr, h.error.val.len))
        buf_json_string(&b, (const char *)h.error.val.ptr, h.error.val.len);
    else
        buf_json_cstr(&b, "database unreachable");
    buf_str(&b, "}");
    respond(ret, 503, &b);
}

static void handle_config(const settings_t *s, response_t *ret) {
    db_t db;
    if (!open_db(s, &db, ret)) return;
    tarn_postgres_database_pool_config_t c;
    tarn_postgres_database_method_database_pool_config(tarn_postgres_database_borrow_database(db), &c);
    tarn_postgres_database_database_drop_own(db);
    buf b = {0};
    buf_str(&b, "{\"name\":");
    buf_json_string(&b, (const char *)c.name.ptr, c.name.len);
    json_field_wstr(&b, "url", c.url);
    buf_fmt(&b, ",\"pool_size\":%u,\"max_overflow\":%u,\"pool_timeout\":", c.pool_size, c.max_overflow);
    buf_double(&b, c.pool_timeout_seconds);
    buf_fmt(&b, ",\"pool_recycle\":%llu,\"pool_pre_ping\":%s,\"lazy_init\":%s}",
            (unsigned long long)c.pool_recycle_seconds, c.pool_pre_ping ? "true" : "false",
            c.lazy_init ? "true" : "false");
    respond(ret, 200, &b);
}

static void handle_pool_stats(const settings_t *s, response_t *ret) {
    db_t db;
    if (!open_db(s, &db, ret)) return;
    tarn_postgres_database_pool_stats_t p;
    tarn_postgres_database_method_database_pool_stats(tarn_postgres_database_borrow_database(db), &p);
    tarn_postgres_database_database_drop_own(db);
    buf b = {0};
    buf_fmt(&b, "{\"size\":%u,\"checked_in\":%u,\"checked_out\":%u,\"overflow\":%u,\"total\":%u,\"waiting\":%u}",
            p.size, p.checked_in, p.checked_out, p.overflow, p.total, p.waiting);
    respond(ret, 200, &b);
}

// ---------------------------------------------------------------------------
// Notes

static const char CREATE_NOTES[] =
    "CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, "
    "title text not null, body text not null, created_at timestamptz not null default now())";
static const char INSERT_NOTE[] =
    "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at";
static const char SELECT_NOTE[] = "SELECT id, title, body, created_at FROM notes WHERE id = $1";
static const char LIST_NOTES[] = "SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50";
static const char DELETE_NOTE[] = "DELETE FROM notes WHERE id = $1";

static void note_not_found(response_t *ret) { respond_error(ret, 404, "note not found"); }

// Parses a note id, or responds 400 and returns false.
static bool note_id(const char *raw, int64_t *id, response_t *ret) {
    const char *digits = (*raw == '+' || *raw == '-') ? raw + 1 : raw;
    if (all_digits(digits)) {
        errno = 0;
        long long v = strtoll(raw, NULL, 10);
        if (errno == 0) {
            *id = v;
            return true;
        }
    }
    buf b = {0};
    buf_str(&b, "{\"error\":\"note id must be a 64-bit integer\",\"id\":");
    buf_json_cstr(&b, raw);
    buf_str(&b, "}");
    respond(ret, 400, &b);
    return false;
}

// INSERT ... RETURNING in a read-write transaction.
static bool insert_note(const settings_t *s, db_t db, params_t *params, rowset_t *rs, dberr_t *err) {
    tarn_postgres_database_transaction_options_t opts = tx_options(s, false);
    tx_t tx;
    dberr_t ignored;
    if (!tarn_postgres_database_method_database_begin(tarn_postgres_database_borrow_database(db), &opts, &tx, err))
        return false;
    wstr sql = W(INSERT_NOTE);
    if (!tarn_postgres_database_method_transaction_query(tarn_postgres_database_borrow_transaction(tx), &sql,
                                                         params, rs, err)) {
        (void)tarn_postgres_database_static_transaction_rollback(tx, &ignored);
        return false;
    }
    if (!tarn_postgres_database_static_transaction_commit(tx, err)) return false;
    if (rs->rows.len == 0) {
        err->tag = TARN_POSTGRES_TYPES_ERROR_VALUE_CONVERSION;
        err->val.value_conversion = W("INSERT ... RETURNING returned no row");
        return false;
    }
    return true;
}

// CREATE TABLE IF NOT EXISTS; a concurrent one may fail with 23505 or 42P07,
// which means the table is there now.
static bool create_notes_table(db_t db, dberr_t *err) {
    wstr sql = W(CREATE_NOTES);
    params_t none = {NULL, 0};
    uint64_t n;
    if (tarn_postgres_database_method_database_execute(tarn_postgres_database_borrow_database(db), &sql, &none,
                                                       &n, err))
        return true;
    return is_code(err, "23505") || is_code(err, "42P07");
}

static void handle_create_note(const settings_t *s, const request_t *req, response_t *ret) {
    jvalue *body = json_object(req, ret);
    if (!body) return;
    jvalue *title = string_field(body, "title", ret);
    if (!title) return;
    jvalue *text = string_field(body, "body", ret);
    if (!text) return;
    size_t n = utf8_chars(title->str, title->len);
    if (n == 0 || n > MAX_TITLE_CHARS) return respond_error(ret, 400, "`title` must be 1 to 200 characters");
    value_t vals[2];
    vals[0].tag = vals[1].tag = TARN_POSTGRES_TYPES_VALUE_TEXT;
    vals[0].val.text = (wstr){(uint8_t *)title->str, title->len};
    vals[1].val.text = (wstr){(uint8_t *)text->str, text->len};
    params_t params = {vals, 2};

    db_t db;
    if (!open_db(s, &db, ret)) return;
    rowset_t rs;
    dberr_t err;
    bool ok = insert_note(s, db, &params, &rs, &err);
    if (!ok && is_code(&err, "42P01")) {
        ok = create_notes_table(db, &err) && insert_note(s, db, &params, &rs, &err);
    }
    tarn_postgres_database_database_drop_own(db);
    if (!ok) return respond_db_error(ret, &err);

    buf b = {0};
    row_to_object(&b, &rs.columns, &rs.rows.ptr[0]);
    respond(ret, 201, &b);
    for (size_t i = 0; i < rs.columns.len && i < rs.rows.ptr[0].len; i++) {
        if (wstr_eq(rs.columns.ptr[i].name, "id")) {
            buf loc = {0};
            buf_str(&loc, "/notes/");
            value_to_json(&loc, &rs.rows.ptr[0].ptr[i]);
            buf_raw(&loc, "", 1);
            add_header(ret, "location", loc.ptr);
            free(loc.ptr);
        }
    }
}

static void handle_get_note(const settings_t *s, const char *raw, response_t *ret) {
    int64_t id;
    if (!note_id(raw, &id, ret)) return;
    db_t db;
    if (!open_db(s, &db, ret)) return;
    value_t v = {.tag = TARN_POSTGRES_TYPES_VALUE_INT64, .val.int64 = id};
    params_t params = {&v, 1};
    wstr sql = W(SELECT_NOTE);
    rowset_t rs;
    dberr_t err;
    bool ok = tarn_postgres_database_method_database_query(tarn_postgres_database_borrow_database(db), &sql,
                                                           &params, &rs, &err);
    tarn_postgres_database_database_drop_own(db);
    if (!ok) return is_code(&err, "42P01") ? note_not_found(ret) : respond_db_error(ret, &err);
    if (rs.rows.len == 0) return note_not_found(ret);
    buf b = {0};
    row_to_object(&b, &rs.columns, &rs.rows.ptr[0]);
    respond(ret, 200, &b);
}

static void handle_list_notes(const settings_t *s, response_t *ret) {
    db_t db;
    if (!open_db(s, &db, ret)) return;
    wstr sql = W(LIST_NOTES);
    params_t none = {NULL, 0};
    rowset_t rs;
    dberr_t err;
    bool ok = tarn_postgres_database_method_database_query(tarn_postgres_database_borrow_database(db), &sql, &none,
                                                           &rs, &err);
    tarn_postgres_database_database_drop_own(db);
    if (!ok && !is_code(&err, "42P01")) return respond_db_error(ret, &err);
    buf b = {0};
    buf_str(&b, "{\"notes\":[");
    for (size_t r = 0; ok && r < rs.rows.len; r++) {
        if (r) buf_raw(&b, ",", 1);
        row_to_object(&b, &rs.columns, &rs.rows.ptr[r]);
    }
    buf_str(&b, "]}");
    respond(ret, 200, &b);
}

static void handle_delete_note(const settings_t *s, const char *raw, response_t *ret) {
    int64_t id;
    if (!note_id(raw, &id, ret)) return;
    db_t db;
    if (!open_db(s, &db, ret)) return;
    value_t v = {.tag = TARN_POSTGRES_TYPES_VALUE_INT64, .val.int64 = id};
    params_t params = {&v, 1};
    wstr sql = W(DELETE_NOTE);
    uint64_t n = 0;
    dberr_t err;
    bool ok = tarn_postgres_database_method_database_execute(tarn_postgres_database_borrow_database(db), &sql,
                                                             &params, &n, &err);
    tarn_postgres_database_database_drop_own(db);
    if (!ok && !is_code(&err, "42P01")) return respond_db_error(ret, &err);
    if (!ok || n == 0) return note_not_found(ret);
    buf empty = {0};
    respond(ret, 204, &empty);
}

// ---------------------------------------------------------------------------
// Routing

static void route(request_t *req, response_t *ret) {
    char *path = dupn(req->path.ptr, req->path.len);
    size_t plen = strlen(path);
    if (plen > 1 && path[plen - 1] == '/') path[--plen] = 0;
    char *method = dupn(req->method.ptr, req->method.len);
    for (char *m = method; *m; m++)
        if (*m >= 'a' && *m <= 'z') *m -= 32;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
         del = strcmp(method, "DELETE") == 0;
    const char *allow = NULL;
    settings_t s;

    if (strcmp(path, "/health") == 0) {
        if (get) {
            buf b = {0};
            buf_str(&b, "{\"status\":\"ok\"}");
            return respond(ret, 200, &b);
        }
        allow = "GET";
    } else if (strcmp(path, "/query") == 0) {
        if (post) return s = read_settings(), handle_query(&s, req, ret);
        allow = "POST";
    } else if (strcmp(path, "/health/db") == 0) {
        if (get) return s = read_settings(), handle_health_db(&s, ret);
        allow = "GET";
    } else if (strcmp(path, "/config") == 0) {
        if (get) return s = read_settings(), handle_config(&s, ret);
        allow = "GET";
    } else if (strcmp(path, "/pool/stats") == 0) {
        if (get) return s = read_settings(), handle_pool_stats(&s, ret);
        allow = "GET";
    } else if (strcmp(path, "/notes") == 0) {
        if (get) return s = read_settings(), handle_list_notes(&s, ret);
        if (post) return s = read_settings(), handle_create_note(&s, req, ret);
        allow = "GET, POST";
    } else if (strncmp(path, "/notes/", 7) == 0 && path[7] && !strchr(path + 7, '/')) {
        if (get) return s = read_settings(), handle_get_note(&s, path + 7, ret);
        if (del) return s = read_settings(), handle_delete_note(&s, path + 7, ret);
        allow = "GET, DELETE";
    } else {
        return respond_error(ret, 404, "not found");
    }
    respond_error(ret, 405, "method not allowed");
    add_header(ret, "allow", allow);
}

// Error bodies carry the host's request id (the `x-request-id` request header), so a
// client's report can be matched with the host's log.
static void add_request_id(request_t *req, response_t *ret) {
    size_t len = ret->body.len;
    if (ret->status < 400 || len < 3 || ret->body.ptr[0] != '{' || ret->body.ptr[len - 1] != '}')
        return;
    for (size_t i = 0; i < req->headers.len; i++) {
        wstr *name = &req->headers.ptr[i].f0, *value = &req->headers.ptr[i].f1;
        if (name->len != 12 || strncasecmp((const char *)name->ptr, "x-request-id", 12) != 0)
            continue;
        buf b = {0};
        buf_raw(&b, (const char *)ret->body.ptr, len - 1);
        buf_str(&b, ",\"request_id\":");
        buf_json_string(&b, (const char *)value->ptr, value->len);
        buf_str(&b, "}");
        free(ret->body.ptr);
        ret->body.ptr = (uint8_t *)b.ptr;
        ret->body.len = b.len;
        return;
    }
}

void exports_tarn_postgres_handler_handle(request_t *req, response_t *ret) {
    route(req, ret);
    add_request_id(req, ret);
}
