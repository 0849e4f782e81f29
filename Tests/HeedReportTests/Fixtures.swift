import Foundation
@testable import HeedReport

/// Hand-made metrics logs in the contract's format (docs/metrics-log.md), written as the
/// writer would: one JSON object per line.
enum Fixture {
    /// A JSON line for an event of `role`/`rank` at `t` with `fields`.
    static func line(_ t: Double, _ role: String, _ rank: Int, _ event: String, _ fields: [String: Any] = [:]) -> String {
        var object: [String: Any] = ["t": t, "role": role, "rank": rank, "event": event]
        for (k, v) in fields { object[k] = v }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Start time of every fixture run (2026-12-01, Unix seconds).
    static let t0 = 1_796_083_200.0

    /// A short cluster run: coordinator, launcher, 2 servers, 2 workers; worker 1 fails at
    /// 30 s, the launcher restarts the cluster from the checkpoint taken at 20 s; worker 1's
    /// last line is cut off mid-write; no epoch records.
    static func clusterRun() -> [(name: String, contents: Data)] {
        var files: [String: [String]] = [:]
        func add(_ name: String, _ l: String) { files[name, default: []].append(l) }
        add("coordinator-0.jsonl", line(t0, "coordinator", 0, "start"))
        add("launcher-0.jsonl", line(t0, "launcher", 0, "start"))
        for s in 0..<2 { add("server-\(s).jsonl", line(t0 + 0.5, "server", s, "start")) }
        for w in 0..<2 {
            add("worker-\(w).jsonl", line(t0 + 1, "worker", w, "start"))
            var step = 0
            for i in 0...40 {
                let t = t0 + 1 + Double(i)
                if w == 1 && t > t0 + 30 && t < t0 + 34 { continue }   // dead, then restarted
                if w == 1 && i == 33 { add("worker-1.jsonl", line(t - 0.5, "worker", 1, "start")) }   // the new process
                if w == 1 && i == 34 { step = 20 }                        // rolled back to the checkpoint
                step += 1
                add("worker-\(w).jsonl", line(t, "worker", w, "step", ["step": step, "loss": 0.69 - 0.004 * Double(step) + 0.01 * Double(w),
                                                                         "samples_per_s": 1000 + 100 * Double(w), "pull_ms": 1.5, "push_ms": 2.0,
                                                                         "future_field": "ignored"]))
            }
        }
        add("coordinator-0.jsonl", line(t0 + 20, "coordinator", 0, "checkpoint", ["step": 40, "dir": "out/ckpt/step-40", "ms": 120.5]))
        add("worker-1.jsonl", line(t0 + 30.2, "worker", 1, "failure", ["detail": "killed by signal 9"]))
        add("launcher-0.jsonl", line(t0 + 31, "launcher", 0, "restart", ["attempt": 1]))
        add("launcher-0.jsonl", line(t0 + 31.5, "launcher", 0, "a_future_event", ["x": 1]))
        for (i, t) in stride(from: t0 + 2, through: t0 + 40, by: 5).enumerated() {
            add("coordinator-0.jsonl", line(t, "coordinator", 0, "memory", ["rss_bytes": 50_000_000 + i * 100_000]))
            for s in 0..<2 { add("server-\(s).jsonl", line(t, "server", s, "memory", ["rss_bytes": 400_000_000 + s * 30_000_000 + i * 1_000_000])) }
            for w in 0..<2 { add("worker-\(w).jsonl", line(t, "worker", w, "memory", ["rss_bytes": 200_000_000 + w * 10_000_000])) }
        }
        // Worker 1 (still running) and the launcher have not ended.
        for (role, rank) in [("coordinator", 0), ("server", 0), ("server", 1), ("worker", 0)] {
            add("\(role)-\(rank).jsonl", line(t0 + 42, role, rank, "end", ["exit": 0]))
        }
        return files.keys.sorted().map { name in
            var text = files[name]!.joined(separator: "\n") + "\n"
            // The run is still writing worker 1's log: half a line, no newline.
            if name == "worker-1.jsonl" { text += String(line(t0 + 41.5, "worker", 1, "step", ["step": 29, "loss": 0.5]).prefix(30)) }
            return (name, Data(text.utf8))
        }
    }

    /// Writes `files` into `RUN/metrics/` of a new temporary run directory; returns RUN.
    static func runDirectory(_ files: [(name: String, contents: Data)]) throws -> String {
        let run = NSTemporaryDirectory() + "heed-report-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: run + "/metrics", withIntermediateDirectories: true)
        for f in files { try f.contents.write(to: URL(fileURLWithPath: run + "/metrics/" + f.name)) }
        return run
    }
}
