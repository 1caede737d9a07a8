//! The container's modules depend on each other one way: the server on the
//! lifecycle, the lifecycle on the ABI and the database, never back. Read
//! from the source (`crate::NAME` paths), so a new back-edge fails here
//! before it tangles the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crabcat_tests::repo_root;

/// The top-level modules of `container/src` and the ones each may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("main", &["admin", "cli", "config", "new", "package"]),
    (
        "lib",
        &[
            "abi",
            "admin",
            "cluster",
            "config",
            "db",
            "deploy",
            "lifecycle",
            "metrics",
            "server",
            "session",
            "watchdog",
        ],
    ),
    ("cli", &["config"]),
    ("config", &[]),
    (
        "server",
        &["abi", "config", "lifecycle", "metrics", "striped", "watchdog"],
    ),
    (
        "admin",
        &["cluster", "config", "db", "deploy", "lifecycle", "metrics", "session"],
    ),
    ("cluster", &["config", "db", "deploy", "hub", "lifecycle"]),
    (
        "lifecycle",
        &[
            "abi", "config", "db", "deploy", "metrics", "session", "striped", "watchdog",
        ],
    ),
    ("metrics", &["abi", "deploy", "hub", "striped", "watchdog"]),
    ("abi", &["db", "hub", "session", "watchdog"]),
    ("session", &["config", "db"]),
    ("watchdog", &[]),
    ("striped", &[]),
    ("hub", &[]),
    ("db", &["config"]),
    ("deploy", &[]),
    ("package", &["deploy"]),
    ("new", &["deploy"]),
];

fn module_of(file: &Path, src: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    // `main.rs` uses the library by its crate name.
    for (i, _) in text.match_indices("crabcat::") {
        let rest = &text[i + "crabcat::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        found.insert(name);
    }
    found
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn container_modules_depend_one_way() {
    let src = repo_root().join("container/src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(f, &src)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &all {
        let module = module_of(file, &src);
        let text = std::fs::read_to_string(file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        // Only names of modules count: `crabcat::app` is a log target.
        edges.extend(
            uses(&text)
                .into_iter()
                .filter(|used| *used != module && modules.contains(used)),
        );
    }
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!("{module}: a new top-level module; add it to ALLOWED"));
            continue;
        };
        for u in used.iter().filter(|u| !may.contains(&u.as_str())) {
            wrong.push(format!("{module} uses {u}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_allowed_layering_has_no_cycle() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    fn reaches(from: &str, to: &str, allowed: &BTreeMap<&str, &[&str]>, seen: &mut BTreeSet<String>) -> bool {
        allowed.get(from).is_some_and(|next| {
            next.iter()
                .any(|n| *n == to || (seen.insert((*n).to_owned()) && reaches(n, to, allowed, seen)))
        })
    }
    for module in allowed.keys() {
        assert!(
            !reaches(module, module, &allowed, &mut BTreeSet::new()),
            "{module} depends on itself through the table"
        );
    }
}
