//! JSON <-> `tarn:postgres/types.value` conversions.

use serde_json::{Map, Number, Value as Json};

use crate::tarn::postgres::types::{Column, Date, Time, Timestamp, Value};

/// A JSON request parameter as a typed value:
/// null → `null`, bool → `boolean`, integer → `int64`, other number →
/// `float64`, string → `text`, array/object → `json` (its JSON text).
///
/// An integer outside the `int64` range (only possible above `i64::MAX`) is
/// sent as `numeric` with its exact decimal text rather than losing precision.
pub fn param_from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int64(i)
            } else if n.is_u64() {
                Value::Numeric(n.to_string())
            } else {
                Value::Float64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(_) | Json::Object(_) => Value::Json(v.to_string()),
    }
}

/// A result cell as JSON (see the crate README for the shapes).
pub fn value_to_json(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int16(i) => Json::from(i),
        Value::Int32(i) => Json::from(i),
        Value::Int64(i) => Json::from(i),
        // Through the shortest decimal text of the f32, so 0.1f32 is 0.1 and
        // not 0.10000000149011612.
        Value::Float32(f) if f.is_finite() => {
            float_json(f.to_string().parse::<f64>().unwrap_or(f as f64))
        }
        Value::Float32(f) => float_json(f as f64),
        Value::Float64(f) => float_json(f),
        Value::Text(s) | Value::Uuid(s) | Value::Numeric(s) => Json::String(s),
        Value::Bytes(b) => Json::String(bytea_hex(&b)),
        // The host sends valid JSON text; keep it as a string if it is not.
        Value::Json(s) => serde_json::from_str(&s).unwrap_or(Json::String(s)),
        Value::Date(d) => Json::String(format_date(&d)),
        Value::Time(t) => Json::String(format_time(&t)),
        Value::Timestamp(ts) => Json::String(format_timestamp(&ts)),
        Value::Timestamptz(ts) => {
            let mut s = format_timestamp(&ts);
            s.push('Z');
            Json::String(s)
        }
    }
}

/// A finite float as a JSON number; NaN and the infinities as the strings
/// PostgreSQL uses for them ("NaN", "Infinity", "-Infinity").
pub fn float_json(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// `bytea` in PostgreSQL's hex output format: `\x` then two lower-case hex
/// digits per byte.
pub fn bytea_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("\\x");
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// `YYYY-MM-DD` (ISO 8601, astronomical year: year 0 is 1 BC and is printed
/// as `0000`, earlier years with a leading `-`; years past 9999 get more digits).
pub fn format_date(d: &Date) -> String {
    if d.year < 0 {
        format!("-{:04}-{:02}-{:02}", d.year.unsigned_abs(), d.month, d.day)
    } else {
        format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
    }
}

/// `HH:MM:SS`, plus `.ffffff` when the microsecond is not zero.
pub fn format_time(t: &Time) -> String {
    if t.microsecond == 0 {
        format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second)
    } else {
        format!(
            "{:02}:{:02}:{:02}.{:06}",
            t.hour, t.minute, t.second, t.microsecond
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
pub fn format_timestamp(ts: &Timestamp) -> String {
    format!("{}T{}", format_date(&ts.date), format_time(&ts.time))
}

/// One row as a JSON object keyed by column name.
pub fn row_to_object(columns: &[Column], row: Vec<Value>) -> Json {
    let mut obj = Map::new();
    for (col, v) in columns.iter().zip(row) {
        obj.insert(col.name.clone(), value_to_json(v));
    }
    Json::Object(obj)
}
