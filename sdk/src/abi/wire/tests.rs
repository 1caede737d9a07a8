use super::*;

fn all_values() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Int(-42),
        Value::Float(1.5),
        Value::Text("héllo".into()),
        Value::Bytes(vec![0, 255]),
        Value::Bool(true),
    ]
}

#[test]
fn values_round_trip() {
    assert_eq!(decode_values(&encode_values(&all_values())).unwrap(), all_values());
    let mut pushed = Vec::new();
    for v in all_values() {
        push_value(&mut pushed, &v);
    }
    finish_values(&mut pushed, all_values().len());
    assert_eq!(pushed, encode_values(&all_values()));
    let mut none = Vec::new();
    finish_values(&mut none, 0);
    assert_eq!(none, encode_values(&[]));
    assert_eq!(none, NO_VALUES);
    assert_eq!(decode_values(NO_VALUES).unwrap(), []);
}

#[test]
fn replies_round_trip() {
    let mut out = Vec::new();
    let at = start_rows(&mut out, ["a", "b", "c", "d", "e", "f"].into_iter());
    for _ in 0..2 {
        for v in all_values() {
            put_value(&mut out, &v);
        }
    }
    finish_rows(&mut out, at, 2);
    let Reply::Rows { columns, rows, values } = decode_reply(&out).unwrap() else {
        panic!()
    };
    assert_eq!(columns.len(), 6);
    assert_eq!(rows, 2);
    assert_eq!(values, [all_values(), all_values()].concat());
    assert_eq!(
        decode_reply(&encode_done(3, Some(7))).unwrap(),
        Reply::Done {
            rows_affected: 3,
            last_insert_id: Some(7)
        }
    );
    assert_eq!(
        decode_reply(&encode_error(ErrorKind::Timeout, "slow")).unwrap(),
        Reply::Error {
            kind: ErrorKind::Timeout,
            message: "slow".into()
        }
    );
    assert_eq!(
        decode_reply(&encode_transaction(9)).unwrap(),
        Reply::Transaction { id: 9 }
    );
}

#[test]
fn results_with_the_same_columns_share_their_names() {
    let result = |names: &[&str]| {
        let mut out = Vec::new();
        let at = start_rows(&mut out, names.iter().copied());
        finish_rows(&mut out, at, 0);
        match decode_reply(&out).unwrap() {
            Reply::Rows { columns, .. } => columns,
            other => panic!("{other:?}"),
        }
    };
    let first = result(&["id", "message"]);
    assert_eq!(*first, ["id".to_owned(), "message".to_owned()]);
    assert!(Arc::ptr_eq(&first, &result(&["id", "message"])));
    let other = result(&["id", "messages"]);
    assert_eq!(*other, ["id".to_owned(), "messages".to_owned()]);
    assert!(!Arc::ptr_eq(&first, &other));
    for i in 0..40 {
        result(&[&format!("c{i}")]); // more than the cache keeps
    }
    assert_eq!(*result(&["id", "message"]), *first);
    let mut bad = Vec::new();
    let at = start_rows(&mut bad, ["\u{e9}"].into_iter());
    finish_rows(&mut bad, at, 0);
    bad[9] = 0xff; // the name's first byte: not UTF-8
    assert!(decode_reply(&bad).is_err(), "a bad name is an error, cached or not");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let good = encode_values(&all_values());
    for cut in 0..good.len() {
        assert!(decode_values(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert!(decode_values(&[255, 255, 255, 255]).is_err());
    assert!(decode_reply(&[9]).is_err());
    assert!(decode_reply(&[]).is_err());
}
