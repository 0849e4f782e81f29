import Foundation
import HeedCore
import Testing
@testable import HeedReport

@Suite struct MetricsLogTests {
    /// Every field of the contract lands where the report reads it; unknown fields and
    /// unknown events are ignored, not errors.
    @Test func parsesEveryEventOfTheContract() {
        func parse(_ l: String) -> MetricsRecord.Parsed { MetricsRecord.parse(line: Substring(l)) }
        let t = Fixture.t0
        #expect(parse(Fixture.line(t, "worker", 2, "step", ["step": 7, "loss": 0.5, "samples_per_s": 900.5, "pull_ms": 1.25, "push_ms": 3, "new": [1]]))
                == .record(MetricsRecord(time: t, role: "worker", rank: 2, event: .step(step: 7, loss: 0.5, samplesPerSecond: 900.5,
                                                                                           pullMilliseconds: 1.25, pushMilliseconds: 3))))
        #expect(parse(Fixture.line(t, "worker", 0, "step", ["step": 8, "loss": 0.4, "samples_per_s": 10]))
                == .record(MetricsRecord(time: t, role: "worker", rank: 0, event: .step(step: 8, loss: 0.4, samplesPerSecond: 10,
                                                                                           pullMilliseconds: nil, pushMilliseconds: nil))))
        #expect(parse(Fixture.line(t, "worker", 0, "epoch", ["epoch": 1, "split": "valid", "auc": 0.71, "gauc": 0.6, "logloss": 0.45]))
                == .record(MetricsRecord(time: t, role: "worker", rank: 0, event: .epoch(epoch: 1, split: "valid", auc: 0.71, gauc: 0.6, logLoss: 0.45))))
        #expect(parse(Fixture.line(t, "coordinator", 0, "checkpoint", ["step": 400, "dir": "c/step-400", "ms": 80]))
                == .record(MetricsRecord(time: t, role: "coordinator", rank: 0, event: .checkpoint(step: 400, directory: "c/step-400", milliseconds: 80))))
        #expect(parse(Fixture.line(t, "launcher", 0, "failure", ["detail": "worker 1 exited 9"]))
                == .record(MetricsRecord(time: t, role: "launcher", rank: 0, event: .failure(detail: "worker 1 exited 9"))))
        #expect(parse(Fixture.line(t, "launcher", 0, "restart", ["attempt": 2]))
                == .record(MetricsRecord(time: t, role: "launcher", rank: 0, event: .restart(attempt: 2))))
        #expect(parse(Fixture.line(t, "server", 1, "memory", ["rss_bytes": 123_456_789]))
                == .record(MetricsRecord(time: t, role: "server", rank: 1, event: .memory(residentBytes: 123_456_789))))
        #expect(parse(Fixture.line(t, "server", 1, "end", ["exit": 143])) == .record(MetricsRecord(time: t, role: "server", rank: 1, event: .end(exit: 143))))
        #expect(parse(Fixture.line(t, "server", 1, "end")) == .record(MetricsRecord(time: t, role: "server", rank: 1, event: .end(exit: nil))))
        #expect(parse(Fixture.line(t, "server", 1, "start")) == .record(MetricsRecord(time: t, role: "server", rank: 1, event: .start)))
        #expect(parse(Fixture.line(t, "server", 1, "gc_pause", ["ms": 3])) == .ignored)
        // Non-finite numbers are written as null: an optional one is absent, a null AUC is
        // nothing to draw (not a broken line).
        #expect(parse(Fixture.line(t, "worker", 0, "step", ["step": 3, "loss": NSNull(), "samples_per_s": 7]))
                == .record(MetricsRecord(time: t, role: "worker", rank: 0, event: .step(step: 3, loss: nil, samplesPerSecond: 7,
                                                                                           pullMilliseconds: nil, pushMilliseconds: nil))))
        #expect(parse(Fixture.line(t, "worker", 0, "epoch", ["epoch": 1, "split": "test", "auc": NSNull()])) == .ignored)
    }

    /// Lines that break the contract are unreadable (counted, never fatal): not JSON, no
    /// role, a known event without a required field, a fractional step.
    @Test(arguments: [
        #"{"t": 1, "role": "worker", "rank": 0, "event": "step", "loss": 0.5}"#,
        #"{"t": 1, "role": "worker", "rank": 0, "event": "step", "step": 1.5}"#,
        #"{"t": 1, "rank": 0, "event": "start"}"#,
        #"{"t": "soon", "role": "worker", "rank": 0, "event": "start"}"#,
        #"{"t": 1, "role": "worker", "rank": 0, "event": "epoch", "epoch": 1, "split": "valid"}"#,
        #"[1, 2]"#,
        #"{"t": 1, "role": "#,
    ])
    func linesBreakingTheContractAreUnreadable(line: String) {
        guard case .unreadable = MetricsRecord.parse(line: Substring(line)) else {
            Issue.record("read \(line)")
            return
        }
    }

    /// A run still writing: the cut-off last line is skipped quietly, a bad line in the middle
    /// is counted, unknown events are counted as ignored, and records are merged by time.
    @Test func readsALogThatIsStillBeingWritten() throws {
        let t = Fixture.t0
        let a = [Fixture.line(t + 2, "worker", 0, "step", ["step": 1, "loss": 0.7, "samples_per_s": 5]),
                 "not json",
                 Fixture.line(t + 4, "worker", 0, "future_event")].joined(separator: "\n") + "\n"
            + String(Fixture.line(t + 5, "worker", 0, "step", ["step": 2, "loss": 0.6, "samples_per_s": 5]).prefix(20))
        let b = Fixture.line(t + 1, "coordinator", 0, "start") + "\n\n" + Fixture.line(t + 3, "coordinator", 0, "end") + "\n"
        let log = MetricsLog(files: [("worker-0.jsonl", Data(a.utf8)), ("coordinator-0.jsonl", Data(b.utf8))])
        #expect(log.records.map(\.time) == [t + 1, t + 2, t + 3])
        #expect(log.records.map(\.writer) == ["coordinator 0", "worker 0", "coordinator 0"])
        #expect(log.truncatedFiles == ["worker-0.jsonl"])
        #expect(log.unreadable["worker-0.jsonl"]?.count == 1 && log.unreadable["coordinator-0.jsonl"] == nil)
        #expect(log.ignoredLines == 1)
    }

    /// The directory form reads every `*.jsonl` of RUN/metrics and says clearly when there is none.
    @Test func readsTheRunDirectoryAndNamesWhatIsMissing() throws {
        let run = try Fixture.runDirectory(Fixture.clusterRun())
        defer { try? FileManager.default.removeItem(atPath: run) }
        try Data("ignored".utf8).write(to: URL(fileURLWithPath: run + "/metrics/README.txt"))
        let log = try MetricsLog(runDirectory: run)
        #expect(log.files == ["coordinator-0.jsonl", "launcher-0.jsonl", "server-0.jsonl", "server-1.jsonl", "worker-0.jsonl", "worker-1.jsonl"])
        #expect(log.truncatedFiles == ["worker-1.jsonl"])
        #expect(throws: HeedError.self) { try MetricsLog(runDirectory: run + "/nowhere") }
        do {
            _ = try MetricsLog(runDirectory: run + "/nowhere")
        } catch let e as HeedError {
            #expect(e.message.contains("nowhere/metrics") && e.message.contains("no metrics directory"))
        }
        try FileManager.default.createDirectory(atPath: run + "/empty/metrics", withIntermediateDirectories: true)
        #expect(throws: HeedError.self) { try MetricsLog(runDirectory: run + "/empty") }
    }
}
