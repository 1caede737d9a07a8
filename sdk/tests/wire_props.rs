//! Property tests of the wire format, the data that crosses the boundary
//! from a module to the container and back: decoding arbitrary or damaged
//! bytes never panics (it is an error), and what is encoded decodes to the
//! same values. A fixed number of cases per property (`CASES`), so CI time
//! stays bounded; `PROPTEST_CASES` raises it for a longer run.

use crabcat_sdk::abi::wire::{
    ErrorKind, Reply, Value, decode_reply, decode_values, encode_done, encode_error, encode_transaction, encode_values,
    finish_rows, put_value_ref, start_rows,
};
use proptest::prelude::*;

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig::with_cases(cases)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
            .prop_map(Value::Float),
        ".{0,40}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn encode_rows(columns: &[String], rows: &[Vec<Value>]) -> Vec<u8> {
    let mut out = Vec::new();
    let count_at = start_rows(&mut out, columns.iter().map(String::as_str));
    for row in rows {
        for value in row {
            put_value_ref(&mut out, value.as_ref());
        }
    }
    finish_rows(&mut out, count_at, rows.len());
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_values(&bytes);
        let _ = decode_reply(&bytes);
    }

    #[test]
    fn parameter_lists_round_trip(values in proptest::collection::vec(value(), 0..16)) {
        prop_assert_eq!(decode_values(&encode_values(&values)).unwrap(), values);
    }

    #[test]
    fn damaged_parameter_lists_are_errors_or_values(
        values in proptest::collection::vec(value(), 1..8),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_values(&values);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_values(&bytes);
        let _ = decode_values(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn results_round_trip_and_survive_damage(
        ncols in 1usize..5,
        cells in proptest::collection::vec(value(), 0..20),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let columns: Vec<String> = (0..ncols).map(|i| format!("c{i}")).collect();
        let rows: Vec<Vec<Value>> = cells.chunks_exact(ncols).map(<[Value]>::to_vec).collect();
        let mut bytes = encode_rows(&columns, &rows);
        match decode_reply(&bytes).unwrap() {
            Reply::Rows { columns: names, rows: n, values } => {
                prop_assert_eq!(&names[..], &columns[..]);
                prop_assert_eq!(n, rows.len());
                prop_assert_eq!(values, rows.concat());
            }
            other => prop_assert!(false, "decoded {other:?}"),
        }
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_reply(&bytes);
    }

    #[test]
    fn other_replies_round_trip(rows in any::<u64>(), id in any::<Option<i64>>(), tx in any::<u64>(), message in ".{0,60}") {
        prop_assert_eq!(
            decode_reply(&encode_done(rows, id)).unwrap(),
            Reply::Done { rows_affected: rows, last_insert_id: id }
        );
        prop_assert_eq!(decode_reply(&encode_transaction(tx)).unwrap(), Reply::Transaction { id: tx });
        prop_assert_eq!(
            decode_reply(&encode_error(ErrorKind::Timeout, &message)).unwrap(),
            Reply::Error { kind: ErrorKind::Timeout, message }
        );
    }
}
