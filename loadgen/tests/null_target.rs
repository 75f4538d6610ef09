//! End to end: a short closed-loop getset run against the built-in null
//! server, checked through the JSON report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ferrokeeper-loadgen");

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_null_server() -> (Kill, String) {
    let mut child = Command::new(BIN)
        .args(["null-server", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start null server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("null-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Kill(child), addr)
}

#[test]
fn closed_loop_getset_against_the_null_server() {
    let (_server, addr) = start_null_server();
    let dir = std::env::temp_dir().join(format!("fk-loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("report.svg");
    let hdr = dir.join("run.hlog");
    let out = Command::new(BIN)
        .args(["--connect", &addr, "--workload", "getset", "--reads", "90"])
        .args(["--sessions", "4", "--outstanding", "8", "--threads", "2"])
        .args(["--warmup", "0.5", "--duration", "2", "--keys", "100"])
        .args(["--progress", "never"])
        .arg("--json")
        .arg(&json)
        .arg("--report")
        .arg(&svg)
        .arg("--hdr-log")
        .arg(&hdr)
        .output()
        .expect("run the load generator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("throughput"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ops = report["ops"].as_u64().unwrap();
    assert!(ops > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["errors_by_code"].as_object().unwrap().is_empty());
    assert!(report["throughput_ops_per_s"].as_f64().unwrap() > 0.0);
    let gets = report["by_op"]["getData"]["ops"].as_u64().unwrap();
    let sets = report["by_op"]["setData"]["ops"].as_u64().unwrap();
    assert_eq!(gets + sets, ops);
    let read_pct = gets as f64 * 100.0 / ops as f64;
    assert!((85.0..95.0).contains(&read_pct), "reads {read_pct}%");
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(report["latency_us"][p].as_u64().unwrap() >= 1, "{p}");
    }
    assert!(report["measured_seconds"].as_f64().unwrap() >= 1.9);
    assert!(!report["timeline"].as_array().unwrap().is_empty());
    let loadgen_cpu = &report["cpu"].as_array().unwrap()[0];
    assert_eq!(loadgen_cpu["what"], "loadgen");

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    let hlog = std::fs::read_to_string(&hdr).unwrap();
    assert!(hlog.contains("#[StartTime"), "{hlog}");
    assert!(
        hlog.lines().any(|l| l.starts_with("Tag=getData,")),
        "{hlog}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_moves_to_the_next_server_when_its_connection_is_lost() {
    let (first, first_addr) = start_null_server();
    let (_second, second_addr) = start_null_server();
    let mut probe = Kill(
        Command::new(BIN)
            .args(["probe", "--connect", &format!("{first_addr},{second_addr}")])
            .args(["--duration", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the probe"),
    );
    let mut first = Some(first);
    let mut events: Vec<serde_json::Value> = Vec::new();
    for line in BufReader::new(probe.0.stdout.take().unwrap()).lines() {
        let ev: serde_json::Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
        if ev["ev"] == "first_ack" {
            first.take(); // the first server dies: the probe must resume on the second
        }
        events.push(ev);
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["ev"].as_str()).collect();
    let at = |kind: &str, server: &str| {
        events
            .iter()
            .position(|e| e["ev"] == kind && e["server"] == server)
            .unwrap_or_else(|| panic!("no {kind} on {server}: {kinds:?}"))
    };
    assert!(at("connected", &first_addr) < at("lost", &first_addr));
    let moved = at("connected", &second_addr);
    assert!(at("lost", &first_addr) < moved, "{kinds:?}");
    let done = events.last().expect("events");
    assert_eq!(done["ev"], "done", "{kinds:?}");
    let moved_us = events[moved]["t_us"].as_u64().unwrap();
    let acks = done["acks_us"].as_array().unwrap();
    assert!(
        acks.iter().any(|t| t.as_u64().unwrap() > moved_us),
        "no write acknowledged after the move: {kinds:?}"
    );
}
