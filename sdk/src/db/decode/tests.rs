use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::row::rows;
use super::*;
use crate::db::DbErrorKind;

fn row(columns: &[&str], values: Vec<Value>) -> Row {
    let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    rows(columns.into(), 1, values).next().unwrap()
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Open,
    Closed,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Item {
    id: i32,
    name: String,
    score: Option<i64>,
    ratio: f64,
    flag: bool,
    data: Vec<u8>,
    #[serde(rename = "state_text")]
    state: State,
    missing: Option<String>,
}

fn item_row(score: Value) -> Row {
    row(
        &["id", "name", "score", "ratio", "flag", "data", "state_text", "extra"],
        vec![
            Value::Int(7),
            Value::Text("x".into()),
            score,
            Value::Int(2),
            Value::Int(1),
            Value::Bytes(vec![0, 255]),
            Value::Text("closed".into()),
            Value::Float(1.5),
        ],
    )
}

#[test]
fn structs_by_column_name() {
    let item: Item = item_row(Value::Null).decode().unwrap();
    let expected = Item {
        id: 7,
        name: "x".into(),
        score: None,
        ratio: 2.0,
        flag: true,
        data: vec![0, 255],
        state: State::Closed,
        missing: None,
    };
    assert_eq!(
        item, expected,
        "NULL and missing columns are None; extra columns are ignored"
    );
    let item: Item = item_row(Value::Int(-3)).decode().unwrap();
    assert_eq!(item.score, Some(-3));
    let _ = State::Open;
}

#[test]
fn structs_may_borrow_from_the_row() {
    #[derive(Deserialize)]
    struct Borrowed<'r> {
        name: &'r str,
    }
    let row = item_row(Value::Null);
    assert_eq!(row.decode::<Borrowed<'_>>().unwrap().name, "x");
}

#[test]
fn tuples_by_position_and_single_values() {
    let row = row(&["id", "message"], vec![Value::Int(1), Value::Text("hi".into())]);
    assert_eq!(row.decode::<(i64, String)>().unwrap(), (1, "hi".to_owned()));
    let error = row.decode::<(i64,)>().unwrap_err();
    assert!(error.message().contains("2 columns, the tuple takes 1"), "{error}");
    let map: BTreeMap<String, serde_json::Value> = row.decode().unwrap();
    assert_eq!(map["message"], "hi");
    let count = super::super::row::rows(["n".to_owned()].into(), 1, vec![Value::Int(5)]);
    assert_eq!(count.into_iter().next().unwrap().decode::<i64>().unwrap(), 5);
    assert!(row.decode::<i64>().unwrap_err().message().contains("one column"));
}

#[test]
fn mismatches_name_the_column() {
    let error = item_row(Value::Text("high".into())).decode::<Item>().unwrap_err();
    assert_eq!(error.kind(), DbErrorKind::Decode);
    assert!(
        error.message().starts_with("column \"score\": invalid type: string"),
        "{error}"
    );
    let row = row(&["id", "name"], vec![Value::Null, Value::Int(300)]);
    let error = row.decode::<(i64, String)>().unwrap_err();
    assert!(
        error.message().starts_with("column \"id\""),
        "NULL into a non-Option: {error}"
    );
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Small {
        name: u8,
    }
    let error = row.decode::<Small>().unwrap_err();
    assert!(error.message().contains("300"), "out of range: {error}");
    let error = super::super::row::rows(["id".to_owned()].into(), 1, vec![Value::Int(1)])
        .next()
        .unwrap()
        .decode::<Item>()
        .unwrap_err();
    assert!(error.message().contains("missing field `name`"), "{error}");
}
