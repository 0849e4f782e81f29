import Foundation
import Testing
@testable import HeedReport

@Suite struct RunReportTests {
    static func page(_ files: [(name: String, contents: Data)], now: Double = Fixture.t0 + 60) -> (String, PageReader) {
        let html = RunReport(log: MetricsLog(files: files), runDirectory: "runs/fixture",
                             generatedAt: Date(timeIntervalSince1970: now)).html()
        return (html, PageReader(html: html))
    }

    /// The cluster fixture (several roles, a failure and a restart, a cut-off last line, no
    /// epoch records): one `<svg>` per plot that has data, each with its series, labelled
    /// axes with units, and the events as markers on the time axes; the AUC plot says why
    /// it is missing.
    @Test func clusterRunDrawsEveryPlotWithItsSeriesLabelsAndMarkers() throws {
        let (html, page) = Self.page(Fixture.clusterRun())
        #expect(page.error == nil, "not well-formed: \(String(describing: page.error))")
        #expect(page.svgCount == 3)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        // Self-contained: no scripts, nothing loaded from elsewhere.
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href=") && !html.contains("@import"))

        let loss = try #require(page["loss"])
        #expect(loss.svgCount == 1 && loss.series == ["worker 0", "worker 1"])
        #expect(loss.texts.contains("step of the worker (steps)") && loss.texts.contains("training loss (log loss per sample)"))
        // Worker 1 restarted (a new start record) and then rolled back to step 20: its line has
        // three segments; worker 0 ran through.
        #expect(loss.paths.count == 2 && loss.paths[1].filter { $0 == "M" }.count == 3 && loss.paths[0].filter { $0 == "M" }.count == 1)

        let auc = try #require(page["auc"])
        #expect(auc.svgCount == 0 && auc.empty?.contains("No epoch records") == true)

        let rate = try #require(page["throughput"])
        #expect(rate.series == ["worker 0", "worker 1", "total (sum of workers)"])
        #expect(rate.texts.contains("throughput (samples/s)") && rate.texts.contains("time since the first record (s)"))
        #expect(rate.markers.sorted() == ["marker checkpoint", "marker failure", "marker restart"])
        // Worker 1's line breaks where its new process starts (4 s of silence alone would not).
        #expect(rate.paths.count == 3 && rate.paths[0].filter { $0 == "M" }.count == 1 && rate.paths[1].filter { $0 == "M" }.count == 2)
        for name in ["worker 0", "worker 1", "total (sum of workers)", "checkpoint", "failure", "restart"] {
            #expect(rate.texts.contains(name), "legend entry \(name)")
        }

        let memory = try #require(page["memory"])
        #expect(memory.series == ["coordinator 0", "server 0", "server 1", "worker 0", "worker 1"])
        #expect(memory.texts.contains("resident memory (MiB)") && memory.markers.count == 3)

        // What was skipped and who has not ended is said, not hidden.
        #expect(html.contains("worker-1.jsonl: the last line has no newline yet"))
        #expect(html.contains("no end record from launcher 0, worker 1"))
        #expect(html.contains("1 line of events this report does not draw"))
        #expect(!Self.hasNonFiniteNumber(html))
    }

    /// Whether a coordinate or label reads nan or inf (Swift's spelling of non-finite Doubles).
    static func hasNonFiniteNumber(_ html: String) -> Bool {
        html.range(of: #"[\s,"MLk(>-](nan|inf)\b"#, options: .regularExpression) != nil
    }

    /// Epoch records give an AUC plot with a dotted line per split, on whole-epoch ticks.
    @Test func epochRecordsGiveAnAUCLinePerSplit() throws {
        let t = Fixture.t0
        var lines: [String] = []
        for e in 1...3 {
            lines.append(Fixture.line(t + Double(e), "worker", 0, "epoch", ["epoch": e, "split": "valid", "auc": 0.70 + 0.01 * Double(e)]))
            lines.append(Fixture.line(t + Double(e), "worker", 0, "epoch", ["epoch": e, "split": "test", "auc": 0.69 + 0.01 * Double(e), "gauc": 0.6]))
        }
        let (html, page) = Self.page([("worker-0.jsonl", Data((lines.joined(separator: "\n") + "\n").utf8))])
        #expect(page.error == nil)
        let auc = try #require(page["auc"])
        #expect(auc.series == ["valid", "test"] && auc.circles == 6)
        #expect(auc.texts.contains("epoch") && auc.texts.contains("AUC (ROC area, 0.5 = chance)"))
        for tick in ["1", "2", "3"] { #expect(auc.texts.contains(tick)) }
        #expect(!auc.texts.contains("1.5"))
        #expect(html.contains("0.7300 at epoch 3 (test AUC 0.7200 at that epoch)"))
        #expect(page.svgCount == 1 && page["loss"]?.empty != nil)
    }

    /// One step record is a plot of one dot with sensible axes, not a crash or NaN coordinates.
    @Test func aSinglePointIsDrawnAsADot() throws {
        let one = Fixture.line(Fixture.t0, "worker", 0, "step", ["step": 1, "loss": 0.69, "samples_per_s": 1234]) + "\n"
        let (html, page) = Self.page([("worker-0.jsonl", Data(one.utf8))])
        #expect(page.error == nil)
        #expect(page["loss"]?.circles == 1 && page["throughput"]?.circles == 2)   // worker 0 and the total
        #expect(!Self.hasNonFiniteNumber(html))
    }

    /// The total is computed independently here: two workers reporting constant rates, the
    /// second ending halfway, give 300 samples/s before its end and 100 after.
    @Test func totalSumsTheWorkersStillReporting() {
        let byWorker: [Int: [(t: Double, v: Double)]] = [
            0: (0...100).map { (Double($0), 100) },
            1: (0...50).map { (Double($0), 200) },
        ]
        let total = RunReport.total(byWorker, ends: [1: [50.5]], grid: [0, 10, 49.9, 50.2, 51, 70, 100, 200])
        #expect(total[0].v == 300 && total[1].v == 300 && total[2].v == 300 && total[3].v == 300)
        #expect(total[4].v == 100 && total[5].v == 100 && total[6].v == 100)
        // 100 s after worker 0's last report, nobody counts.
        #expect(total[7].v.isNaN)
        // Without the end record, worker 1 keeps counting for its stale limit (5 × 1 s, at least 10 s).
        let noEnd = RunReport.total(byWorker, ends: [:], grid: [55, 59.9, 61])
        #expect(noEnd.map(\.v) == [300, 300, 100])
        // Between two reports a worker's rate is read off the straight line drawn between them
        // (reports every 10 s: stale after 50 s); before its first report it does not count.
        let ramps: [Int: [(t: Double, v: Double)]] = [0: [(0, 100), (10, 200), (20, 200)], 1: [(4, 50), (14, 50)]]
        let mixed = RunReport.total(ramps, ends: [:], grid: [2, 5, 10, 15, 25])
        #expect(mixed.map(\.v) == [120, 200, 250, 250, 250])
    }

    /// Long lines are averaged in consecutive groups to at most `maxPointsPerLine` points,
    /// never across a break (one that falls inside a group of 3 here).
    @Test func longLinesAreAveragedWithoutCrossingBreaks() {
        let n = 3 * RunReport.maxPointsPerLine
        let points = (0..<n).map { (x: Double($0), y: 2 * Double($0)) }
        let cut = n / 2 + 1
        let (thin, breaks) = RunReport.thin(points, breaks: [cut])
        #expect(thin.count <= RunReport.maxPointsPerLine + 1 && thin.count >= RunReport.maxPointsPerLine / 2)
        #expect(thin[0].x == 1 && thin[0].y == 2)   // mean of 0, 1, 2 and of 0, 2, 4
        #expect(breaks.count == 1)
        if let b = breaks.first { #expect(thin[b].x >= Double(cut) && thin[b - 1].x < Double(cut)) }
        #expect(zip(thin, thin.dropFirst()).allSatisfy { $0.x < $1.x } && thin.allSatisfy { $0.y == 2 * $0.x })
    }

    /// Past `legendLimit` workers (the soak's 64), workers share one colour and one legend entry.
    @Test func manyWorkersShareOneLegendEntry() throws {
        var files: [(name: String, contents: Data)] = []
        for w in 0..<12 {
            let text = (1...3).map { Fixture.line(Fixture.t0 + Double($0), "worker", w, "step", ["step": $0, "loss": 0.6, "samples_per_s": 100]) }
            files.append(("worker-\(w).jsonl", Data((text.joined(separator: "\n") + "\n").utf8)))
        }
        let (_, page) = Self.page(files)
        let loss = try #require(page["loss"])
        #expect(loss.series.count == 12 && loss.texts.contains("each of 12 workers") && !loss.texts.contains("worker 3"))
        #expect(page["throughput"]?.texts.contains("total (sum of workers)") == true)
    }
}
