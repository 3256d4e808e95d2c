#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

// ---------------------------------------------------------------------------
// Reading

typedef struct {
    const char *s;
    size_t len, i;
    const char *err;
} reader;

static jvalue *new_value(jtype t) {
    jvalue *v = xrealloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

static void ws(reader *r) {
    while (r->i < r->len) {
        char c = r->s[r->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->i++;
    }
}

static bool lit(reader *r, const char *word) {
    size_t n = strlen(word);
    if (r->len - r->i >= n && memcmp(r->s + r->i, word, n) == 0) {
        r->i += n;
        return true;
    }
    return false;
}

static int hex4(const char *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static void put_utf8(buf *b, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_raw(b, t, n);
}

// At an opening quote; returns the decoded string (NUL-terminated).
static bool read_string(reader *r, char **out, size_t *out_len) {
    buf b = {0};
    r->i++;
    for (;;) {
        if (r->i >= r->len) {
            r->err = "unterminated string";
            return false;
        }
        unsigned char c = (unsigned char)r->s[r->i];
        if (c == '"') {
            r->i++;
            break;
        }
        if (c < 0x20) {
            r->err = "control character in string";
            return false;
        }
        if (c != '\\') {
            size_t start = r->i;
            while (r->i < r->len && r->s[r->i] != '"' && r->s[r->i] != '\\' &&
                   (unsigned char)r->s[r->i] >= 0x20)
                r->i++;
            buf_raw(&b, r->s + start, r->i - start);
            continue;
        }
        if (r->i + 1 >= r->len) {
            r->err = "unterminated string";
            return false;
        }
        char e = r->s[r->i + 1];
        r->i += 2;
        switch (e) {
        case '"': buf_raw(&b, "\"", 1); break;
        case '\\': buf_raw(&b, "\\", 1); break;
        case '/': buf_raw(&b, "/", 1); break;
        case 'b': buf_raw(&b, "\b", 1); break;
        case 'f': buf_raw(&b, "\f", 1); break;
        case 'n': buf_raw(&b, "\n", 1); break;
        case 'r': buf_raw(&b, "\r", 1); break;
        case 't': buf_raw(&b, "\t", 1); break;
        case 'u': {
            int u = r->i + 4 <= r->len ? hex4(r->s + r->i) : -1;
            if (u < 0) {
                r->err = "bad \\u escape";
                return false;
            }
            r->i += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = (r->i + 6 <= r->len && r->s[r->i] == '\\' && r->s[r->i + 1] == 'u')
                             ? hex4(r->s + r->i + 2)
                             : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    r->err = "lone leading surrogate in \\u escape";
                    return false;
                }
                r->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                r->err = "lone trailing surrogate in \\u escape";
                return false;
            }
            put_utf8(&b, cp);
            break;
        }
        default:
            r->err = "bad escape";
            return false;
        }
    }
    buf_raw(&b, "", 1); // NUL
    *out = b.ptr;
    *out_len = b.len - 1;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static jvalue *read_value(reader *r, int depth) {
    if (depth > 128) {
        r->err = "nesting too deep";
        return NULL;
    }
    ws(r);
    if (r->i >= r->len) {
        r->err = "unexpected end of input";
        return NULL;
    }
    char c = r->s[r->i];
    if (c == '{' || c == '[') {
        bool obj = c == '{';
        char close = obj ? '}' : ']';
        jvalue *v = new_value(obj ? J_OBJECT : J_ARRAY);
        size_t cap = 0;
        r->i++;
        ws(r);
        if (r->i < r->len && r->s[r->i] == close) {
            r->i++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            size_t key_len = 0;
            if (obj) {
                ws(r);
                if (r->i >= r->len || r->s[r->i] != '"') {
                    r->err = "expected a string key";
                    return NULL;
                }
                if (!read_string(r, &key, &key_len)) return NULL;
                ws(r);
                if (r->i >= r->len || r->s[r->i] != ':') {
                    r->err = "expected ':'";
                    return NULL;
                }
                r->i++;
            }
            jvalue *item = read_value(r, depth + 1);
            if (!item) return NULL;
            if (v->count == cap) {
                cap = cap ? cap * 2 : 4;
                v->items = xrealloc(v->items, cap * sizeof *v->items);
                if (obj) {
                    v->keys = xrealloc(v->keys, cap * sizeof *v->keys);
                    v->key_lens = xrealloc(v->key_lens, cap * sizeof *v->key_lens);
                }
            }
            if (obj) {
                v->keys[v->count] = key;
                v->key_lens[v->count] = key_len;
            }
            v->items[v->count++] = item;
            ws(r);
            if (r->i < r->len && r->s[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->i < r->len && r->s[r->i] == close) {
                r->i++;
                return v;
            }
            r->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
            return NULL;
        }
    }
    if (c == '"') {
        jvalue *v = new_value(J_STRING);
        return read_string(r, &v->str, &v->len) ? v : NULL;
    }
    if (lit(r, "true") || lit(r, "false")) {
        jvalue *v = new_value(J_BOOL);
        v->boolean = c == 't';
        return v;
    }
    if (lit(r, "null")) return new_value(J_NULL);
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    size_t start = r->i, i = r->i;
    if (i < r->len && r->s[i] == '-') i++;
    if (i < r->len && r->s[i] == '0') i++;
    else if (i < r->len && is_digit(r->s[i]))
        while (i < r->len && is_digit(r->s[i])) i++;
    else {
        r->err = "unexpected character";
        return NULL;
    }
    if (i < r->len && r->s[i] == '.') {
        i++;
        if (i >= r->len || !is_digit(r->s[i])) {
            r->err = "bad number";
            return NULL;
        }
        while (i < r->len && is_digit(r->s[i])) i++;
    }
    if (i < r->len && (r->s[i] == 'e' || r->s[i] == 'E')) {
        i++;
        if (i < r->len && (r->s[i] == '+' || r->s[i] == '-')) i++;
        if (i >= r->len || !is_digit(r->s[i])) {
            r->err = "bad number";
            return NULL;
        }
        while (i < r->len && is_digit(r->s[i])) i++;
    }
    jvalue *v = new_value(J_NUMBER);
    v->len = i - start;
    v->str = xrealloc(NULL, v->len + 1);
    memcpy(v->str, r->s + start, v->len);
    v->str[v->len] = 0;
    r->i = i;
    return v;
}

jvalue *json_parse(const char *text, size_t len, const char **err) {
    reader r = {text, len, 0, NULL};
    jvalue *v = read_value(&r, 0);
    if (v) {
        ws(&r);
        if (r.i != r.len) {
            r.err = "trailing characters";
            v = NULL;
        }
    }
    if (!v) *err = r.err ? r.err : "invalid JSON";
    return v;
}

jvalue *json_get(const jvalue *obj, const char *key) {
    if (!obj || obj->type != J_OBJECT) return NULL;
    size_t n = strlen(key);
    jvalue *found = NULL; // the last duplicate wins
    for (size_t i = 0; i < obj->count; i++)
        if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) found = obj->items[i];
    return found;
}

bool json_is_integer(const jvalue *num) {
    return strpbrk(num->str, ".eE") == NULL;
}

bool utf8_valid(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len) return false; // truncated sequence
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

// ---------------------------------------------------------------------------
// Writing

void buf_raw(buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        b->ptr = xrealloc(b->ptr, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->ptr + b->len, s, n);
    b->len += n;
}

void buf_str(buf *b, const char *s) { buf_raw(b, s, strlen(s)); }

void buf_fmt(buf *b, const char *fmt, ...) {
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        buf_raw(b, small, (size_t)n);
        return;
    }
    char *big = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_raw(b, big, (size_t)n);
    free(big);
}

void buf_json_string(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_raw(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_raw(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': buf_raw(b, "\\\"", 2); break;
        case '\\': buf_raw(b, "\\\\", 2); break;
        case '\n': buf_raw(b, "\\n", 2); break;
        case '\r': buf_raw(b, "\\r", 2); break;
        case '\t': buf_raw(b, "\\t", 2); break;
        case '\b': buf_raw(b, "\\b", 2); break;
        case '\f': buf_raw(b, "\\f", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_raw(b, u, 6);
        }
        }
    }
    buf_raw(b, s + start, n - start);
    buf_raw(b, "\"", 1);
}

void buf_json_cstr(buf *b, const char *s) { buf_json_string(b, s, strlen(s)); }

void buf_json_value(buf *b, const jvalue *v) {
    switch (v->type) {
    case J_NULL: buf_str(b, "null"); break;
    case J_BOOL: buf_str(b, v->boolean ? "true" : "false"); break;
    case J_NUMBER: buf_raw(b, v->str, v->len); break;
    case J_STRING: buf_json_string(b, v->str, v->len); break;
    case J_ARRAY:
    case J_OBJECT:
        buf_raw(b, v->type == J_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) buf_raw(b, ",", 1);
            if (v->type == J_OBJECT) {
                buf_json_string(b, v->keys[i], v->key_lens[i]);
                buf_raw(b, ":", 1);
            }
            buf_json_value(b, v->items[i]);
        }
        buf_raw(b, v->type == J_ARRAY ? "]" : "}", 1);
        break;
    }
}

static bool non_finite(buf *b, double d) {
    if (isnan(d)) buf_json_cstr(b, "NaN");
    else if (isinf(d)) buf_json_cstr(b, d > 0 ? "Infinity" : "-Infinity");
    else return false;
    return true;
}

// The shortest decimal that reads back as `d` (as a double, or as a float
// when `single`), written like Rust's ryu/serde_json: plain notation with at
// least one fractional digit for decimal exponents -5..=15 ("30.0", "0.001"),
// else scientific without '+' ("1e16", "1.5e-7").
static void shortest(buf *b, double d, bool single) {
    char t[64];
    int p, maxp = single ? 9 : 17;
    for (p = 1; p <= maxp; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, d);
        if (single ? strtof(t, NULL) == (float)d : strtod(t, NULL) == d) break;
    }
    if (p > maxp) p = maxp;
    char *e = strchr(t, 'e');
    int exp = atoi(e + 1);
    if (exp >= -5 && exp <= 15) {
        int decimals = p - 1 - exp;
        snprintf(t, sizeof t, "%.*f", decimals > 0 ? decimals : 0, d);
        buf_str(b, t);
        if (!strchr(t, '.')) buf_raw(b, ".0", 2);
    } else {
        *e = 0;
        buf_str(b, t);
        buf_fmt(b, "e%d", exp);
    }
}

void buf_double(buf *b, double d) {
    if (!non_finite(b, d)) shortest(b, d, false);
}

void buf_float(buf *b, float f) {
    if (!non_finite(b, f)) shortest(b, f, true);
}
