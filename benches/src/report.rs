//! Tables and MetisDB/peer ratios from the JSON results.

use serde_json::Value;
use std::fmt::Write as _;

type Get = fn(&[&Value], &str) -> Option<f64>;

/// One column of a phase table.
struct Col {
    label: &'static str,
    get: Get,
    /// Digits after the point.
    prec: usize,
    /// Whether a larger value is better (for the ratio legend), if it is a ratio column.
    ratio: Option<bool>,
}

fn find<'a>(rs: &[&'a Value], engine: &str, phase: &str) -> Option<&'a Value> {
    rs.iter().copied().rfind(|r| r["engine"] == engine && r["phase"] == phase)
}

fn reads_at<'a>(rs: &[&'a Value], engine: &str, threads: u64) -> Option<&'a Value> {
    rs.iter().copied().rfind(|r| r["engine"] == engine && r["phase"] == "reads" && r["threads"] == threads)
}

fn f(v: Option<&Value>, path: &[&str]) -> Option<f64> {
    let mut v = v?;
    for p in path {
        v = v.get(*p)?;
    }
    v.as_f64()
}

macro_rules! col {
    ($label:expr, $prec:expr, $ratio:expr, |$rs:ident, $e:ident| $body:expr) => {
        Col { label: $label, get: |$rs: &[&Value], $e: &str| $body, prec: $prec, ratio: $ratio }
    };
}

fn phases() -> Vec<(&'static str, &'static str, Vec<Col>)> {
    vec![
        (
            "load",
            "load N keys, 100k puts per durable transaction",
            vec![
                col!("secs", 1, Some(false), |rs, e| f(find(rs, e, "load"), &["secs"])),
                col!("keys/s", 0, Some(true), |rs, e| f(find(rs, e, "load"), &["keys_per_s"])),
                col!("commit ms/txn", 1, None, |rs, e| f(find(rs, e, "load"), &["commit_ms_mean"])),
                col!("puts s", 1, None, |rs, e| f(find(rs, e, "load"), &["puts_secs"])),
                col!("commit s", 1, None, |rs, e| f(find(rs, e, "load"), &["commit_secs"])),
                col!("B/key", 1, Some(false), |rs, e| f(find(rs, e, "load"), &["bytes_per_key"])),
                col!("peak RSS MiB", 0, None, |rs, e| f(find(rs, e, "load"), &["peak_rss_mib"])),
            ],
        ),
        (
            "reads",
            "warm random point reads (after one warm-up pass)",
            vec![
                col!("1t ops/s", 0, Some(true), |rs, e| f(reads_at(rs, e, 1), &["ops_per_s"])),
                col!("1t p50 ns", 0, Some(false), |rs, e| f(reads_at(rs, e, 1), &["p50_ns"])),
                col!("1t p99 ns", 0, Some(false), |rs, e| f(reads_at(rs, e, 1), &["p99_ns"])),
                col!("2t ops/s", 0, Some(true), |rs, e| f(reads_at(rs, e, 2), &["ops_per_s"])),
                col!("2t p50 ns", 0, Some(false), |rs, e| f(reads_at(rs, e, 2), &["p50_ns"])),
                col!("2t p99 ns", 0, Some(false), |rs, e| f(reads_at(rs, e, 2), &["p99_ns"])),
                col!("2t/1t", 2, None, |rs, e| Some(
                    f(reads_at(rs, e, 2), &["ops_per_s"])? / f(reads_at(rs, e, 1), &["ops_per_s"])?
                )),
                col!("peak RSS MiB", 0, None, |rs, e| f(reads_at(rs, e, 2).or(reads_at(rs, e, 1)), &["peak_rss_mib"])),
                col!("loadavg", 1, None, |rs, e| f(reads_at(rs, e, 2).or(reads_at(rs, e, 1)), &["loadavg_1m"])),
            ],
        ),
        (
            "commits",
            "durable commits of 10k puts (9k updates, 1k inserts); time = begin..commit returned",
            vec![
                col!("mean ms", 1, Some(false), |rs, e| f(find(rs, e, "commits"), &["ms_mean"])),
                col!("p50 ms", 1, Some(false), |rs, e| f(find(rs, e, "commits"), &["ms_p50"])),
                col!("p99 ms", 1, Some(false), |rs, e| f(find(rs, e, "commits"), &["ms_p99"])),
                col!("commit() ms", 1, None, |rs, e| f(find(rs, e, "commits"), &["commit_call_ms_mean"])),
                col!("peak RSS MiB", 0, None, |rs, e| f(find(rs, e, "commits"), &["peak_rss_mib"])),
            ],
        ),
        (
            "space",
            "bytes per live key (headline: data-file length; alloc: st_blocks of the whole dir)",
            vec![
                col!("after load", 1, Some(false), |rs, e| f(find(rs, e, "space"), &["after_load", "bytes_per_key"])),
                col!("after commits", 1, Some(false), |rs, e| f(
                    find(rs, e, "space"),
                    &["after_commits", "bytes_per_key"]
                )),
                col!("alloc after load", 1, None, |rs, e| f(
                    find(rs, e, "space"),
                    &["after_load", "alloc_bytes_per_key"]
                )),
                col!("alloc after commits", 1, None, |rs, e| f(
                    find(rs, e, "space"),
                    &["after_commits", "alloc_bytes_per_key"]
                )),
                col!("used after commits", 1, None, |rs, e| f(
                    find(rs, e, "space"),
                    &["after_commits", "used_bytes_per_key"]
                )),
            ],
        ),
        (
            "cold",
            "random point reads after closing the engine and dropping the page cache",
            vec![
                col!("reads/s", 0, Some(true), |rs, e| f(find(rs, e, "cold"), &["reads_per_s"])),
                col!("p50 us", 1, Some(false), |rs, e| f(find(rs, e, "cold"), &["p50_ns"]).map(|x| x / 1e3)),
                col!("p99 us", 1, Some(false), |rs, e| f(find(rs, e, "cold"), &["p99_ns"]).map(|x| x / 1e3)),
                col!("4K/lookup (proc)", 2, Some(false), |rs, e| f(find(rs, e, "cold"), &["pages_4k_per_lookup"])),
                col!("first 10% reads/s", 0, Some(true), |rs, e| f(find(rs, e, "cold"), &["first_reads_per_s"])),
                col!("first 10% 4K/lookup", 2, Some(false), |rs, e| f(
                    find(rs, e, "cold"),
                    &["first_pages_4k_per_lookup"]
                )),
                col!("4K/lookup (disk)", 2, None, |rs, e| f(find(rs, e, "cold"), &["disk_pages_4k_per_lookup"])),
                col!("ios/lookup", 2, None, |rs, e| f(find(rs, e, "cold"), &["disk_read_ios_per_lookup"])),
                col!("open s", 2, None, |rs, e| f(find(rs, e, "cold"), &["open_secs"])),
            ],
        ),
        (
            "churn",
            "commits of 10k puts (same mix), then file size vs live data (keys*(32+value))",
            vec![
                col!("commits", 0, None, |rs, e| f(find(rs, e, "churn"), &["commits"])),
                col!("mean ms", 1, Some(false), |rs, e| f(find(rs, e, "churn"), &["ms_mean"])),
                col!("p99 ms", 1, None, |rs, e| f(find(rs, e, "churn"), &["ms_p99"])),
                col!("file MiB", 1, Some(false), |rs, e| f(find(rs, e, "churn"), &["file_bytes"])
                    .map(|x| x / 1048576.0)),
                col!("live MiB", 1, None, |rs, e| f(find(rs, e, "churn"), &["live_data_bytes"]).map(|x| x / 1048576.0)),
                col!("file/live", 2, None, |rs, e| f(find(rs, e, "churn"), &["file_over_live"])),
                col!("used/live", 2, None, |rs, e| f(find(rs, e, "churn"), &["used_over_live"])),
                col!("peak RSS MiB", 0, None, |rs, e| f(find(rs, e, "churn"), &["peak_rss_mib"])),
            ],
        ),
    ]
}

fn fmt_num(x: Option<f64>, prec: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.prec$}"),
        _ => "-".into(),
    }
}

fn table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    let n = headers.len();
    let mut w = vec![0usize; n];
    for (i, h) in headers.iter().enumerate() {
        w[i] = h.len();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, " {:<w$} |", c, w = w[i]);
            } else {
                let _ = write!(s, " {:>w$} |", c, w = w[i]);
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(headers));
    let mut sep = String::from("|");
    for (i, x) in w.iter().enumerate() {
        if i == 0 {
            let _ = write!(sep, "{}|", "-".repeat(x + 2));
        } else {
            let _ = write!(sep, "{}:|", "-".repeat(x + 1));
        }
    }
    let _ = writeln!(out, "{sep}");
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
}

/// Renders the tables (markdown) for every key count found in `results`.
pub fn render(results: &[Value]) -> String {
    let mut out = String::new();
    let mut key_counts: Vec<u64> = results.iter().filter_map(|r| r["keys"].as_u64()).collect();
    key_counts.sort_unstable();
    key_counts.dedup();
    for n in key_counts {
        let rs: Vec<&Value> = results.iter().filter(|r| r["keys"].as_u64() == Some(n)).collect();
        let mut engines: Vec<String> = Vec::new();
        for r in &rs {
            if let Some(e) = r["engine"].as_str() {
                if !engines.iter().any(|x| x == e) {
                    engines.push(e.to_string());
                }
            }
        }
        // MetisDB first.
        engines.sort_by_key(|e| (e != "metisdb", crate::engine_order(e)));
        let peers: Vec<&String> = engines.iter().filter(|e| *e != "metisdb").collect();
        let has_metis = engines.iter().any(|e| e == "metisdb");
        let _ = writeln!(out, "\n## N = {n} keys\n");
        for (phase, what, cols) in phases() {
            if !rs.iter().any(|r| r["phase"] == phase) {
                continue;
            }
            let _ = writeln!(out, "### {phase}: {what}\n");
            let mut headers = vec!["engine".to_string()];
            headers.extend(cols.iter().map(|c| c.label.to_string()));
            let rows: Vec<Vec<String>> = engines
                .iter()
                .filter(|e| rs.iter().any(|r| r["engine"] == e.as_str() && r["phase"] == phase))
                .map(|e| {
                    let mut row = vec![e.clone()];
                    row.extend(cols.iter().map(|c| fmt_num((c.get)(&rs, e), c.prec)));
                    row
                })
                .collect();
            table(&mut out, &headers, &rows);
            let ratio_cols: Vec<&Col> = cols.iter().filter(|c| c.ratio.is_some()).collect();
            if has_metis && !peers.is_empty() && !ratio_cols.is_empty() {
                let _ = writeln!(out, "\nMetisDB/peer ratios:\n");
                let mut headers = vec!["metric".to_string()];
                headers.extend(peers.iter().map(|p| format!("metisdb/{p}")));
                let rows: Vec<Vec<String>> = ratio_cols
                    .iter()
                    .map(|c| {
                        let better = if c.ratio == Some(true) { "higher is better" } else { "lower is better" };
                        let mut row = vec![format!("{} ({better})", c.label)];
                        let m = (c.get)(&rs, "metisdb");
                        for p in &peers {
                            let r = match (m, (c.get)(&rs, p)) {
                                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                                _ => None,
                            };
                            row.push(fmt_num(r, 2) + if r.is_some() { "x" } else { "" });
                        }
                        row
                    })
                    .collect();
                table(&mut out, &headers, &rows);
            }
            let _ = writeln!(out);
        }
        if has_metis {
            targets(&mut out, &rs);
        }
        profile_hint(&mut out, &rs);
    }
    out
}

fn targets(out: &mut String, rs: &[&Value]) {
    let m = |g: Get| g(rs, "metisdb");
    let x = |g: Get| g(rs, "mdbx");
    let ratio = |g: Get| Some(m(g)? / x(g)?);
    let reads1: Get = |rs, e| f(reads_at(rs, e, 1), &["ops_per_s"]);
    let reads2: Get = |rs, e| f(reads_at(rs, e, 2), &["ops_per_s"]);
    let commit: Get = |rs, e| f(find(rs, e, "commits"), &["ms_mean"]);
    let load: Get = |rs, e| f(find(rs, e, "load"), &["keys_per_s"]);
    let bpk_load: Get = |rs, e| f(find(rs, e, "space"), &["after_load", "bytes_per_key"]);
    let bpk_commits: Get = |rs, e| f(find(rs, e, "space"), &["after_commits", "bytes_per_key"]);
    let churn: Get = |rs, e| f(find(rs, e, "churn"), &["file_over_live"]);
    let rows: Vec<(&str, Option<f64>, &str, bool)> = vec![
        ("warm reads, 1 thread, ops/s vs libmdbx", ratio(reads1), ">= 1.50", true),
        ("MetisDB 2 threads vs its 1 thread", (|| Some(m(reads2)? / m(reads1)?))(), ">= 1.80", true),
        ("commit of 10k puts, time vs libmdbx", ratio(commit), "<= 0.50", false),
        ("load keys/s vs libmdbx", ratio(load), ">= 2.00", true),
        ("bytes/key after load vs libmdbx", ratio(bpk_load), "<= 1.00", false),
        ("bytes/key after commits vs libmdbx", ratio(bpk_commits), "<= 1.00", false),
        ("MetisDB file / live data after churn", m(churn), "<= 1.30", false),
    ];
    let _ = writeln!(out, "### Targets\n");
    let headers = vec!["target".to_string(), "measured".into(), "goal".into(), "verdict".into()];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, v, goal, higher)| {
            let limit: f64 = goal[3..].trim().parse().expect("goal");
            let verdict = match v {
                None => "not measured".to_string(),
                Some(v) if (higher && v >= limit) || (!higher && v <= limit) => "met".into(),
                Some(_) => "MISSED".into(),
            };
            vec![name.to_string(), fmt_num(v, 2) + if v.is_some() { "x" } else { "" }, goal.into(), verdict]
        })
        .collect();
    table(out, &headers, &rows);
    let _ = writeln!(out);
}

fn profile_hint(out: &mut String, rs: &[&Value]) {
    let mut lines = Vec::new();
    for phase in ["load", "commits", "churn"] {
        if let Some(r) = find(rs, "metisdb", phase) {
            let p = &r["profile"];
            let g = |k: &str| p[k].as_f64().unwrap_or(0.0);
            let commits = g("commits").max(1.0);
            if p.get("commits").is_none() {
                continue;
            }
            lines.push(format!(
                "- {phase}: {} commits; per commit: prepare {:.1} ms, write {:.1} ms, sync {:.1} ms, meta {:.1} ms; {:.0} pages ({:.1} MiB) written per commit",
                g("commits"),
                g("commit_prepare_ms") / commits,
                g("commit_write_ms") / commits,
                g("commit_sync_ms") / commits,
                g("commit_meta_ms") / commits,
                g("pages_written") / commits,
                g("bytes_written") / commits / 1048576.0,
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "### MetisDB commit profile (Db::metrics deltas)\n");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(out);
    }
}
