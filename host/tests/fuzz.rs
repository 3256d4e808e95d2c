//! A short, bounded fuzz pass (proptest; 256 cases per property unless
//! `PROPTEST_CASES` says otherwise) over what untrusted or hand-written
//! input reaches: the runtime-config and manifest parsers, the guest value
//! conversion layer, the statement classifier and the URL redaction.
//! Properties: nothing panics, every error names what is wrong, conversions
//! round-trip, and passwords never survive redaction.

use std::path::Path;

use bytes::BytesMut;
use proptest::prelude::*;
use tarn::bindings::tarn::postgres::types::{Date, Time, Timestamp, Value};
use tarn::config::{DatabaseUrl, Overrides, Settings};
use tarn::database::statement::classify;
use tarn::database::value::{Param, numeric_to_string};
use tarn::manifest::Manifest;
use tokio_postgres::types::ToSql;

/// Parses `text` as a runtime config file.
fn parse_config(text: &str) -> Result<Settings, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "tarn-fuzz-config-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write config");
    let result = Settings::resolve(&Overrides::default(), Some(&path)).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    result
}

/// Every numeric key of the runtime config: (table, key).
const NUMERIC_KEYS: &[(&str, &str)] = &[
    ("database.default", "pool_size"),
    ("database.default", "max_overflow"),
    ("database.default", "pool_timeout"),
    ("database.default", "pool_recycle"),
    ("database.default", "overflow_idle_timeout"),
    ("database.default", "max_waiting"),
    ("database.default", "connect_timeout"),
    ("runtime", "memory_limit_mb"),
    ("runtime", "cpu_limit_ms"),
    ("runtime", "request_timeout_ms"),
    ("runtime", "max_instances"),
    ("runtime", "max_handles"),
    ("runtime", "max_result_rows"),
    ("runtime", "max_result_bytes"),
    ("http", "max_body_kb"),
    ("http", "max_concurrent_requests"),
    ("http", "header_read_timeout_ms"),
    ("http", "body_read_timeout_ms"),
    ("http", "shutdown_grace_ms"),
];

/// TOML numbers, including the edges: zero, negatives, extremes, inf, nan.
fn toml_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (-5i64..5).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("nan".to_string()),
        Just("9223372036854775807".to_string()),
        Just("17592186044416".to_string()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let date = (any::<i32>(), any::<u8>(), any::<u8>()).prop_map(|(year, month, day)| Date {
        year,
        month,
        day,
    });
    let time = (any::<u8>(), any::<u8>(), any::<u8>(), any::<u32>()).prop_map(
        |(hour, minute, second, microsecond)| Time {
            hour,
            minute,
            second,
            microsecond,
        },
    );
    let timestamp = (date.clone(), time.clone()).prop_map(|(date, time)| Timestamp { date, time });
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i16>().prop_map(Value::Int16),
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        any::<f32>().prop_map(Value::Float32),
        any::<f64>().prop_map(Value::Float64),
        ".*".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        ".*".prop_map(Value::Json),
        ".*".prop_map(Value::Uuid),
        date.prop_map(Value::Date),
        time.prop_map(Value::Time),
        timestamp.clone().prop_map(Value::Timestamp),
        timestamp.prop_map(Value::Timestamptz),
        ".*".prop_map(Value::Numeric),
    ]
}

/// PostgreSQL's binary `numeric` for `digits` (a decimal string without
/// sign or point) with `scale` digits after the point.
fn encode_numeric(negative: bool, digits: &str, scale: usize) -> Vec<u8> {
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let int = int.trim_start_matches('0');
    // Base-10000 groups: the integer part aligned on the point from the
    // right, the fraction from the left.
    let int_pad = (4 - int.len() % 4) % 4;
    let int_digits = format!("{}{int}", "0".repeat(int_pad));
    let frac_pad = (4 - frac.len() % 4) % 4;
    let frac_digits = format!("{frac}{}", "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<u16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect()
    };
    let mut groups = group(&int_digits);
    let mut weight = groups.len() as i32 - 1;
    groups.extend(group(&frac_digits));
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::new();
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    for word in [
        groups.len() as u16,
        weight as i16 as u16,
        sign,
        scale as u16,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn config_parser_never_panics(text in ".{0,200}") {
        let _ = parse_config(&text);
    }

    #[test]
    fn config_errors_name_the_key(index in 0..NUMERIC_KEYS.len(), number in toml_number()) {
        let (table, key) = NUMERIC_KEYS[index];
        match parse_config(&format!("[{table}]\n{key} = {number}\n")) {
            Ok(_) => {}
            Err(message) => prop_assert!(message.contains(key), "`{key} = {number}`: {message}"),
        }
    }

    #[test]
    fn accepted_limits_are_what_was_asked(mb in 1i64.., kb in 1i64..) {
        // A limit is either taken as given or refused: never wrapped around.
        match parse_config(&format!("[runtime]\nmemory_limit_mb = {mb}\n[http]\nmax_body_kb = {kb}\n")) {
            Ok(s) => {
                prop_assert_eq!(u128::from(s.runtime.memory_limit_bytes), (mb as u128) << 20);
                prop_assert_eq!(s.http.max_body_bytes as u128, (kb as u128) << 10);
            }
            Err(message) => prop_assert!(message.contains("too large"), "{message}"),
        }
    }

    #[test]
    fn manifest_parser_never_panics(text in ".{0,300}") {
        let _ = Manifest::parse(&text, Path::new("/tmp"), Path::new("spin.toml"));
    }

    #[test]
    fn manifest_with_random_extra_lines_never_panics(
        lines in proptest::collection::vec("[a-z_.\\[\\] =\"0-9-]{0,30}", 0..6),
    ) {
        let base = "spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.http]]\nroute = \"/...\"\n\
                    component = \"app\"\n[component.app]\nsource = \"app.wasm\"\n";
        let text = format!("{base}{}\n", lines.join("\n"));
        if let Err(e) = Manifest::parse(&text, Path::new("/tmp"), Path::new("spin.toml")) {
            prop_assert!(e.to_string().starts_with("spin.toml"), "{e}");
        }
    }

    #[test]
    fn value_conversion_never_panics(index in 0usize..100, value in value()) {
        if let Ok(param) = Param::from_value(index, value) {
            let mut out = BytesMut::new();
            let _ = param.to_sql_checked(&param.pg_type(), &mut out);
        }
    }

    #[test]
    fn bad_values_name_their_parameter(index in 0usize..100, year in any::<i32>(), month in 13u8.., day in any::<u8>()) {
        let err = Param::from_value(index, Value::Date(Date { year, month, day })).unwrap_err();
        let expected = format!("parameter ${}", index + 1);
        prop_assert!(err.starts_with(&expected), "{err}");
    }

    #[test]
    fn numeric_decoding_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = numeric_to_string(&raw);
    }

    #[test]
    fn numeric_decoding_is_exact(negative in any::<bool>(), digits in "[0-9]{1,40}", scale in 0usize..12) {
        let text = numeric_to_string(&encode_numeric(negative, &digits, scale)).expect("decodes");
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let int = match int.trim_start_matches('0') { "" => "0", i => i };
        let unsigned = if scale == 0 { int.to_string() } else { format!("{int}.{frac}") };
        let zero = padded.bytes().all(|b| b == b'0');
        let expected = if negative && !zero { format!("-{unsigned}") } else { unsigned };
        prop_assert_eq!(text, expected);
    }

    #[test]
    fn classifier_never_panics(sql in ".{0,200}") {
        let _ = classify(&sql);
    }

    #[test]
    fn transaction_control_is_always_refused(
        keyword in prop::sample::select(vec!["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"]),
        upper in proptest::collection::vec(any::<bool>(), 10),
        noise in prop::sample::select(vec!["", "  ", "\n\t", "-- c\n", "/* c */", "/* a /* b */ */ ", "("]),
        tail in "[ a-z]{0,20}",
    ) {
        let keyword: String = keyword
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let sql = format!("{noise}{keyword} {tail}");
        prop_assert!(classify(&sql).is_err(), "{sql:?} was allowed");
    }

    #[test]
    fn url_passwords_never_survive_redaction(middle in "[a-zA-Z0-9/?#@:%&= '!$]{0,12}") {
        // Marked so that it cannot occur anywhere else in the URL.
        let password = format!("Qz{middle}Qz");
        for url in [
            format!("postgres://app:{password}@db.internal:5432/app"),
            format!("postgres://app@db.internal:5432/app?password={password}"),
            format!("host=db.internal user=app password='{}' dbname=app", password.replace('\\', "\\\\").replace('\'', "\\'")),
        ] {
            // Only strings the driver accepts can be configured.
            if let Ok(parsed) = DatabaseUrl::parse("url", &url) {
                let shown = format!("{} {parsed:?} {}", parsed.redacted(), parsed);
                prop_assert!(!shown.contains(&password), "{url} shown as {shown}");
            }
        }
    }
}

/// Cases per property: 256, or `PROPTEST_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}
