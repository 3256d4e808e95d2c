//! Conversion between guest `value`s and PostgreSQL's wire formats.
//!
//! A parameter's variant decides the type it is sent as; a result column's
//! PostgreSQL type decides the variant it is decoded into. Types `value`
//! cannot carry are refused with a message that suggests a cast.

use std::error::Error as StdError;

use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::bindings::tarn::postgres::types::{Column, DataType, Date, Time, Timestamp, Value};

type BoxError = Box<dyn StdError + Sync + Send>;

/// A guest value ready to be bound as a statement parameter.
#[derive(Debug)]
pub enum Param {
    /// NULL, type left to PostgreSQL's inference.
    Null,
    /// `boolean`
    Bool(bool),
    /// `int2`
    Int16(i16),
    /// `int4`
    Int32(i32),
    /// `int8`
    Int64(i64),
    /// `float4`
    Float32(f32),
    /// `float8`
    Float64(f64),
    /// `text`
    Text(String),
    /// `bytea`
    Bytes(Vec<u8>),
    /// `jsonb`, as JSON text
    Json(String),
    /// `uuid`
    Uuid(uuid::Uuid),
    /// `date`
    Date(NaiveDate),
    /// `time`
    Time(NaiveTime),
    /// `timestamp`
    Timestamp(NaiveDateTime),
    /// `timestamptz`
    Timestamptz(DateTime<Utc>),
    /// `numeric`, sent in text format so no precision is lost
    Numeric(String),
}

/// The type PostgreSQL infers (OID 0 = unspecified in a Parse message).
fn inferred() -> Type {
    Type::new("unspecified".into(), 0, Kind::Pseudo, "pg_catalog".into())
}

impl Param {
    /// Converts a guest value, checking what PostgreSQL would not.
    pub fn from_value(index: usize, value: Value) -> Result<Param, String> {
        let bad = |what: &str, detail: String| {
            format!("parameter ${}: invalid {what}: {detail}", index + 1)
        };
        Ok(match value {
            Value::Null => Param::Null,
            Value::Boolean(v) => Param::Bool(v),
            Value::Int16(v) => Param::Int16(v),
            Value::Int32(v) => Param::Int32(v),
            Value::Int64(v) => Param::Int64(v),
            Value::Float32(v) => Param::Float32(v),
            Value::Float64(v) => Param::Float64(v),
            Value::Text(v) => Param::Text(v),
            Value::Bytes(v) => Param::Bytes(v),
            Value::Json(v) => Param::Json(v),
            Value::Uuid(v) => Param::Uuid(
                uuid::Uuid::parse_str(&v).map_err(|e| bad("uuid", format!("{v:?}: {e}")))?,
            ),
            Value::Date(d) => Param::Date(date(d).ok_or_else(|| bad("date", format!("{d:?}")))?),
            Value::Time(t) => Param::Time(time(t).ok_or_else(|| bad("time", format!("{t:?}")))?),
            Value::Timestamp(ts) => {
                Param::Timestamp(timestamp(ts).ok_or_else(|| bad("timestamp", format!("{ts:?}")))?)
            }
            Value::Timestamptz(ts) => Param::Timestamptz(
                timestamp(ts)
                    .ok_or_else(|| bad("timestamptz", format!("{ts:?}")))?
                    .and_utc(),
            ),
            Value::Numeric(v) => Param::Numeric(v),
        })
    }

    /// The type the parameter is declared as.
    pub fn pg_type(&self) -> Type {
        match self {
            Param::Null => inferred(),
            Param::Bool(_) => Type::BOOL,
            Param::Int16(_) => Type::INT2,
            Param::Int32(_) => Type::INT4,
            Param::Int64(_) => Type::INT8,
            Param::Float32(_) => Type::FLOAT4,
            Param::Float64(_) => Type::FLOAT8,
            Param::Text(_) => Type::TEXT,
            Param::Bytes(_) => Type::BYTEA,
            Param::Json(_) => Type::JSONB,
            Param::Uuid(_) => Type::UUID,
            Param::Date(_) => Type::DATE,
            Param::Time(_) => Type::TIME,
            Param::Timestamp(_) => Type::TIMESTAMP,
            Param::Timestamptz(_) => Type::TIMESTAMPTZ,
            Param::Numeric(_) => Type::NUMERIC,
        }
    }
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Int16(v) => v.to_sql(ty, out),
            Param::Int32(v) => v.to_sql(ty, out),
            Param::Int64(v) => v.to_sql(ty, out),
            Param::Float32(v) => v.to_sql(ty, out),
            Param::Float64(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Json(v) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Param::Uuid(v) => v.to_sql(ty, out),
            Param::Date(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::Timestamp(v) => v.to_sql(ty, out),
            Param::Timestamptz(v) => v.to_sql(ty, out),
            Param::Numeric(v) => {
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            Param::Numeric(_) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

fn date(d: Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(d.year, d.month.into(), d.day.into())
}

fn time(t: Time) -> Option<NaiveTime> {
    NaiveTime::from_hms_micro_opt(
        t.hour.into(),
        t.minute.into(),
        t.second.into(),
        t.microsecond,
    )
}

fn timestamp(ts: Timestamp) -> Option<NaiveDateTime> {
    Some(date(ts.date)?.and_time(time(ts.time)?))
}

fn to_date(d: NaiveDate) -> Date {
    Date {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

fn to_time(t: NaiveTime) -> Time {
    Time {
        hour: t.hour() as u8,
        minute: t.minute() as u8,
        second: t.second() as u8,
        microsecond: t.nanosecond() / 1000,
    }
}

fn to_timestamp(ts: NaiveDateTime) -> Timestamp {
    Timestamp {
        date: to_date(ts.date()),
        time: to_time(ts.time()),
    }
}

/// The variant a column of type `ty` decodes into.
pub fn data_type(ty: &Type) -> DataType {
    match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
            DataType::Text
        }
        Type::BYTEA => DataType::Bytes,
        Type::JSON | Type::JSONB => DataType::Json,
        Type::UUID => DataType::Uuid,
        Type::DATE => DataType::Date,
        Type::TIME => DataType::Time,
        Type::TIMESTAMP => DataType::Timestamp,
        Type::TIMESTAMPTZ => DataType::Timestamptz,
        Type::NUMERIC => DataType::Numeric,
        _ if ty.name() == "citext" => DataType::Text,
        _ => DataType::Other,
    }
}

/// Describes result columns.
pub fn columns(cols: &[tokio_postgres::Column]) -> Vec<Column> {
    cols.iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
            type_name: c.type_().name().to_string(),
        })
        .collect()
}

/// Checks that every column can be decoded, naming the first that cannot.
pub fn check_columns(cols: &[Column]) -> Result<(), String> {
    match cols
        .iter()
        .find(|c| c.data_type == DataType::Other && c.type_name != "void")
    {
        Some(c) => Err(format!(
            "column `{}` has type `{}`, which tarn cannot return; cast it in SQL, e.g. `{}::text`",
            c.name, c.type_name, c.name
        )),
        None => Ok(()),
    }
}

/// Decodes one row; returns the values and their approximate size in bytes.
pub fn decode_row(row: &Row, cols: &[Column]) -> Result<(Vec<Value>, usize), String> {
    let mut values = Vec::with_capacity(cols.len());
    let mut size = 0;
    for (i, col) in cols.iter().enumerate() {
        let value = decode(row, i, col).map_err(|e| {
            format!(
                "cannot decode column `{}` ({}): {e}",
                col.name, col.type_name
            )
        })?;
        size += 16
            + match &value {
                Value::Text(s) | Value::Json(s) | Value::Numeric(s) | Value::Uuid(s) => s.len(),
                Value::Bytes(b) => b.len(),
                _ => 0,
            };
        values.push(value);
    }
    Ok((values, size))
}

fn decode(row: &Row, i: usize, col: &Column) -> Result<Value, BoxError> {
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, BoxError> {
        row.try_get::<_, Option<T>>(i).map_err(Into::into)
    }
    let value = match col.data_type {
        DataType::Boolean => get::<bool>(row, i)?.map(Value::Boolean),
        DataType::Int16 => get::<i16>(row, i)?.map(Value::Int16),
        DataType::Int32 => get::<i32>(row, i)?.map(Value::Int32),
        DataType::Int64 if col.type_name == "oid" => {
            get::<u32>(row, i)?.map(|v| Value::Int64(v.into()))
        }
        DataType::Int64 => get::<i64>(row, i)?.map(Value::Int64),
        DataType::Float32 => get::<f32>(row, i)?.map(Value::Float32),
        DataType::Float64 => get::<f64>(row, i)?.map(Value::Float64),
        DataType::Text if col.type_name == "char" => {
            get::<i8>(row, i)?.map(|v| Value::Text(char::from(v as u8).to_string()))
        }
        DataType::Text => get::<Raw>(row, i)?
            .map(|r| r.text())
            .transpose()?
            .map(Value::Text),
        DataType::Bytes => get::<Vec<u8>>(row, i)?.map(Value::Bytes),
        DataType::Json => get::<Raw>(row, i)?
            .map(|r| r.json(col.type_name == "jsonb"))
            .transpose()?
            .map(Value::Json),
        DataType::Uuid => get::<uuid::Uuid>(row, i)?.map(|u| Value::Uuid(u.to_string())),
        DataType::Date => get::<NaiveDate>(row, i)?.map(|d| Value::Date(to_date(d))),
        DataType::Time => get::<NaiveTime>(row, i)?.map(|t| Value::Time(to_time(t))),
        DataType::Timestamp => {
            get::<NaiveDateTime>(row, i)?.map(|t| Value::Timestamp(to_timestamp(t)))
        }
        DataType::Timestamptz => {
            get::<DateTime<Utc>>(row, i)?.map(|t| Value::Timestamptz(to_timestamp(t.naive_utc())))
        }
        DataType::Numeric => get::<Raw>(row, i)?
            .map(|r| numeric_to_string(r.0))
            .transpose()?
            .map(Value::Numeric),
        // `void` (e.g. `select pg_sleep(1)`) has no value.
        DataType::Other if col.type_name == "void" => None,
        DataType::Other => return Err("unsupported type".into()),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A column's raw binary value, for types decoded here rather than by
/// `postgres-types` (text-like, json/jsonb, numeric).
struct Raw<'a>(&'a [u8]);

impl Raw<'_> {
    fn text(&self) -> Result<String, BoxError> {
        Ok(std::str::from_utf8(self.0)?.to_string())
    }

    fn json(&self, jsonb: bool) -> Result<String, BoxError> {
        // jsonb's binary form is a version byte (1) followed by the text.
        let body = match self.0.split_first() {
            Some((1, rest)) if jsonb => rest,
            Some((v, _)) if jsonb => return Err(format!("unknown jsonb version {v}").into()),
            _ => self.0,
        };
        Ok(std::str::from_utf8(body)?.to_string())
    }
}

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders PostgreSQL's binary `numeric` as its exact decimal text.
pub fn numeric_to_string(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err(format!("bad numeric sign {sign:#x}").into()),
    }
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: base-10000 digits at weights `weight` down to 0.
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight {
            let d = digit(k);
            if k == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(k)));
            k += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_text_is_exact() {
        assert_eq!(numeric_to_string(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(
            numeric_to_string(&numeric(1, 0, 0, 0, &[12])).unwrap(),
            "12"
        );
        // 12.50
        assert_eq!(
            numeric_to_string(&numeric(2, 0, 0, 2, &[12, 5000])).unwrap(),
            "12.50"
        );
        // -1234567.0001
        assert_eq!(
            numeric_to_string(&numeric(3, 1, 0x4000, 4, &[123, 4567, 1])).unwrap(),
            "-1234567.0001"
        );
        // 0.000012
        assert_eq!(
            numeric_to_string(&numeric(1, -2, 0, 6, &[1200])).unwrap(),
            "0.000012"
        );
        // 10000 (trailing zero groups are not sent)
        assert_eq!(
            numeric_to_string(&numeric(1, 1, 0, 0, &[1])).unwrap(),
            "10000"
        );
        assert_eq!(
            numeric_to_string(&numeric(0, 0, 0xC000, 0, &[])).unwrap(),
            "NaN"
        );
        assert!(numeric_to_string(&[0, 1]).is_err());
    }

    #[test]
    fn bad_parameters_name_their_position() {
        let err = Param::from_value(1, Value::Uuid("nope".into())).unwrap_err();
        assert!(err.starts_with("parameter $2: invalid uuid"), "{err}");
        let err = Param::from_value(
            0,
            Value::Date(Date {
                year: 2024,
                month: 2,
                day: 30,
            }),
        )
        .unwrap_err();
        assert!(err.contains("invalid date"), "{err}");
    }

    #[test]
    fn dates_round_trip() {
        let d = Date {
            year: 2026,
            month: 11,
            day: 27,
        };
        assert_eq!(format!("{:?}", to_date(date(d).unwrap())), format!("{d:?}"));
        let t = Time {
            hour: 23,
            minute: 59,
            second: 58,
            microsecond: 123_456,
        };
        assert_eq!(format!("{:?}", to_time(time(t).unwrap())), format!("{t:?}"));
    }

    #[test]
    fn unsupported_columns_suggest_a_cast() {
        let cols = vec![Column {
            name: "addr".into(),
            data_type: DataType::Other,
            type_name: "inet".into(),
        }];
        let err = check_columns(&cols).unwrap_err();
        assert!(err.contains("addr::text"), "{err}");
    }
}
