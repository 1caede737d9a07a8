//! `crabcat status`: the console's columns as a text table, from the
//! answers of `GET /apps` and `GET /console/data`.

use serde_json::Value;

const HEADER: [&str; 10] = [
    "NAME",
    "STATE",
    "VERSION",
    "CONTEXT",
    "REQUESTS",
    "IN-FLIGHT",
    "ERRORS",
    "SESSIONS",
    "IMAGES-KEPT",
    "LAST-ERROR",
];

/// The table: a line about the container, then one row per app, by name.
/// `SESSIONS` shows `-` until the container reports sessions.
pub fn status_table(apps: &[Value], data: &Value) -> String {
    let container = &data["container"];
    let mut text = format!(
        "crabcat {}  memory (RSS, whole process) {}  images loaded {} ({} mapped)\n",
        container["version"].as_str().unwrap_or("-"),
        container["resident_bytes"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), bytes),
        number(&container["images"]),
        container["image_bytes"].as_u64().map_or_else(|| "-".to_owned(), bytes),
    );
    let mut apps: Vec<&Value> = apps.iter().collect();
    apps.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut rows: Vec<[String; HEADER.len()]> = vec![HEADER.map(str::to_owned)];
    for app in apps {
        rows.push(row(app, &data["apps"][app["name"].as_str().unwrap_or_default()]));
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    text.push_str(&lines.join("\n"));
    text
}

fn row(app: &Value, figures: &Value) -> [String; HEADER.len()] {
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    // One line per app: a multi-line error is joined.
    let error = app["error"]
        .as_str()
        .or(app["last_error"].as_str())
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    [
        text(&app["name"]),
        text(&app["state"]),
        text(&app["version"]),
        text(&app["context_path"]),
        number(&app["requests_served"]),
        number(&app["requests_in_flight"]),
        number(&figures["errors"]),
        number(&app["sessions"]),
        number(&app["images_kept_by_reloads"]),
        error,
    ]
}

fn number(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

#[allow(clippy::cast_precision_loss)] // shown with one decimal
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_app_with_sessions_once_reported() {
        let apps = serde_json::json!([
            {"name": "zeta", "state": "failed", "error": "init said\nno", "context_path": "/zeta",
             "requests_served": 0, "requests_in_flight": 0, "images_kept_by_reloads": 0},
            {"name": "hello", "state": "running", "version": "0.1.0", "context_path": "/hello",
             "requests_served": 12, "requests_in_flight": 1, "images_kept_by_reloads": 2, "sessions": 3},
        ]);
        let data = serde_json::json!({
            "container": {"version": "9.9.9", "resident_bytes": 3 * 1024 * 1024, "images": 3, "image_bytes": 2048},
            "apps": {"hello": {"errors": 4}, "zeta": {"errors": 0}},
        });
        let table = status_table(apps.as_array().unwrap(), &data);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "crabcat 9.9.9  memory (RSS, whole process) 3.0 MiB  images loaded 3 (2.0 KiB mapped)"
        );
        let cells = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(cells(lines[1]), HEADER.map(str::to_owned));
        assert_eq!(
            cells(lines[2]),
            ["hello", "running", "0.1.0", "/hello", "12", "1", "4", "3", "2"]
        );
        assert_eq!(
            cells(lines[3]),
            [
                "zeta", "failed", "-", "/zeta", "0", "0", "0", "-", "0", "init", "said", "no"
            ]
        );
    }
}
