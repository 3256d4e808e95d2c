// A small JSON reader (DOM, numbers kept as their text) and writer for the
// tarn C guest. Everything is malloc'd and never freed: an instance serves
// one request and is then thrown away.
#ifndef TARN_JSON_H
#define TARN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype;

typedef struct jvalue jvalue;
struct jvalue {
    jtype type;
    bool boolean;
    // J_STRING: decoded UTF-8 text; J_NUMBER: the number's JSON text.
    char *str;
    size_t len;
    // J_ARRAY: items; J_OBJECT: keys[i] -> items[i].
    jvalue **items;
    char **keys;
    size_t *key_lens;
    size_t count;
};

// Parses `len` bytes of JSON. On failure returns NULL and sets *err.
jvalue *json_parse(const char *text, size_t len, const char **err);
// The member `key` of an object, or NULL.
jvalue *json_get(const jvalue *obj, const char *key);
// Whether a J_NUMBER is written as an integer (no fraction or exponent).
bool json_is_integer(const jvalue *num);
bool utf8_valid(const uint8_t *s, size_t len);

// A growable output buffer.
typedef struct {
    char *ptr;
    size_t len, cap;
} buf;

void buf_raw(buf *b, const char *s, size_t n);
void buf_str(buf *b, const char *s); // raw NUL-terminated text
void buf_fmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_json_string(buf *b, const char *s, size_t n); // quoted, escaped
void buf_json_cstr(buf *b, const char *s);
void buf_json_value(buf *b, const jvalue *v); // compact JSON
// A finite double as JSON (shortest round trip, always with '.' or 'e');
// NaN and the infinities as the strings "NaN", "Infinity", "-Infinity".
void buf_double(buf *b, double d);
void buf_float(buf *b, float f); // same, through the float's shortest text

#endif
