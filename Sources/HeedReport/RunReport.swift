import Foundation

/// `heed report`: one self-contained HTML page (inline SVG, no scripts) drawn from a run's
/// metrics log: loss over steps per worker, AUC per epoch, samples/s per worker and in
/// total, resident memory per role, and checkpoints, failures and restarts on the time axis.
///
/// Works on any prefix of a log: a run that ended early or is still writing gives the
/// plots of what is there, and a plot with no data says so instead of drawing empty axes.
public struct RunReport {
    /// The records drawn.
    public let log: MetricsLog
    /// Shown in the title.
    public let runDirectory: String
    /// When the report was made (to tell how fresh the last record is).
    public let generatedAt: Date

    /// Workers (or roles) beyond this many are drawn alike, under one legend entry.
    static let legendLimit = 10
    /// More points than this in one line are averaged in consecutive groups.
    static let maxPointsPerLine = 1500

    /// A report of `log`.
    public init(log: MetricsLog, runDirectory: String, generatedAt: Date = Date()) {
        self.log = log
        self.runDirectory = runDirectory
        self.generatedAt = generatedAt
    }

    // MARK: - Time axis

    /// First and last record time (Unix seconds).
    var timeSpan: (start: Double, end: Double) {
        (log.records.first?.time ?? 0, log.records.last?.time ?? 0)
    }

    /// Seconds, minutes or hours, whichever keeps the time axis' numbers readable.
    var timeUnit: (name: String, seconds: Double) {
        let span = timeSpan.end - timeSpan.start
        return span <= 600 ? ("s", 1) : span <= 3 * 3600 ? ("min", 60) : ("h", 3600)
    }

    /// A record time on the time axis.
    func axisTime(_ t: Double) -> Double { (t - timeSpan.start) / timeUnit.seconds }

    private var timeLabel: String { "time since the first record (\(timeUnit.name))" }

    // MARK: - Charts

    /// Loss over each worker's steps; a new process (a `start` record: a restart) or a step
    /// that goes back starts a new segment. Nil without step records carrying a loss.
    func lossChart() -> Chart? {
        var byWorker: [Int: [(t: Double, x: Double, y: Double)]] = [:]
        for r in log.records where r.role == "worker" {
            if case .step(let step, let loss?, _, _, _) = r.event { byWorker[r.rank, default: []].append((r.time, Double(step), loss)) }
        }
        guard !byWorker.isEmpty else { return nil }
        let starts = startTimes()
        let series = styled(byWorker.keys.sorted().map { rank in
            let line = byWorker[rank]!
            let points = line.map { (x: $0.x, y: $0.y) }
            let breaks = Set(points.indices.dropFirst().filter { points[$0].x < points[$0 - 1].x })
                .union(Self.restartBreaks(line.map(\.t), starts: starts["worker \(rank)"] ?? []))
            return (name: "worker \(rank)", points: points, breaks: breaks)
        }, group: "workers")
        return Chart(title: "Training loss over steps", xLabel: "step of the worker (steps)",
                     yLabel: "training loss (log loss per sample)", series: series)
    }

    /// AUC per epoch, one line per split (and per writer when several evaluate).
    /// Nil without epoch records.
    func aucChart() -> Chart? {
        var lines: [String: [(x: Double, y: Double)]] = [:]
        let writers = Set(log.records.compactMap { r -> String? in
            if case .epoch = r.event { return r.writer }
            return nil
        })
        for r in log.records {
            guard case .epoch(let epoch, let split, let auc, _, _) = r.event else { continue }
            let name = writers.count > 1 ? "\(split) (\(r.writer))" : split
            lines[name, default: []].append((Double(epoch), auc))
        }
        guard !lines.isEmpty else { return nil }
        let splitColors = ["valid": "#1f77b4", "test": "#2ca02c"]
        var others = Self.palette.dropFirst(2).makeIterator()
        let series = lines.keys.sorted { Self.splitOrder($0) < Self.splitOrder($1) }.map { name -> Chart.Series in
            let split = String(name.prefix { $0 != " " })
            let color = splitColors[split] ?? others.next() ?? "#333"
            return Chart.Series(name: name, color: color, points: lines[name]!.sorted { $0.x < $1.x }, dots: true, width: 2)
        }
        return Chart(title: "AUC per epoch", xLabel: "epoch", yLabel: "AUC (ROC area, 0.5 = chance)",
                     series: series, xIntegers: true)
    }

    /// Samples/s of every worker as it reported them, and their sum over time. Nil
    /// without step records carrying a rate.
    func throughputChart() -> Chart? {
        var byWorker: [Int: [(t: Double, v: Double)]] = [:]
        var ends: [Int: [Double]] = [:]
        for r in log.records where r.role == "worker" {
            switch r.event {
            case .step(_, _, let rate?, _, _): byWorker[r.rank, default: []].append((r.time, rate))
            case .end: ends[r.rank, default: []].append(r.time)
            default: break
            }
        }
        guard !byWorker.isEmpty else { return nil }
        var series = styled(byWorker.keys.sorted().map { rank in
            let line = timeSeries(name: "worker \(rank)", byWorker[rank]!)
            return (line.name, line.points, line.breaks)
        }, group: "workers")
        let total = Self.total(byWorker, ends: ends, grid: Self.grid(from: timeSpan.start, to: timeSpan.end))
        series.append(Chart.Series(name: "total (sum of workers)", color: "#111",
                                   points: total.filter { $0.v.isFinite }.map { (axisTime($0.t), $0.v) },
                                   breaks: Self.gapBreaks(total), width: 2.2))
        return Chart(title: "Samples per second", xLabel: timeLabel, yLabel: "throughput (samples/s)",
                     series: series, markers: markers(), yFromZero: true, xRange: timeRange)
    }

    /// Resident memory of every role over time, in MiB or GiB. Nil without memory records.
    func memoryChart() -> Chart? {
        var byWriter: [String: [(t: Double, v: Double)]] = [:]
        var order: [String: (Int, Int)] = [:]
        for r in log.records {
            guard case .memory(let bytes) = r.event else { continue }
            byWriter[r.writer, default: []].append((r.time, Double(bytes)))
            order[r.writer] = (Self.roleOrder(r.role), r.rank)
        }
        guard !byWriter.isEmpty else { return nil }
        let maxBytes = byWriter.values.flatMap { $0.map(\.v) }.max() ?? 0
        let (unit, scale) = maxBytes >= 4 * 1_073_741_824 ? ("GiB", 1_073_741_824.0) : ("MiB", 1_048_576.0)
        let writers = byWriter.keys.sorted { order[$0]! < order[$1]! }
        // Roles with many ranks (the soak's workers) share one colour and one legend entry.
        var series: [Chart.Series] = []
        var colors = Self.palette.makeIterator()
        let roles = Dictionary(grouping: writers) { String($0.prefix { $0 != " " }) }
        let crowded = writers.count > Self.legendLimit
        var roleColor: [String: String] = [:]
        for w in writers {
            let role = String(w.prefix { $0 != " " })
            let many = crowded && roles[role]!.count > 1
            var s = timeSeries(name: w, byWriter[w]!.map { ($0.t, $0.v / scale) })
            if many {
                let first = roleColor[role] == nil
                if first { roleColor[role] = colors.next() ?? "#333" }
                s.color = roleColor[role]!
                s.width = 1
                s.inLegend = first
                if first { s.name = "each \(role) (\(roles[role]!.count))" }
            } else {
                s.color = colors.next() ?? "#333"
            }
            series.append(s)
        }
        return Chart(title: "Resident memory", xLabel: timeLabel, yLabel: "resident memory (\(unit))",
                     series: series, markers: markers(), yFromZero: true, xRange: timeRange)
    }

    /// Checkpoints, failures and restarts as markers on the time axis.
    func markers() -> [Chart.Marker] {
        log.records.compactMap { r in
            let at = String(format: "%.1f s after the first record", r.time - timeSpan.start)
            switch r.event {
            case .checkpoint(let step, let dir, let ms):
                var t = "checkpoint at global step \(step), \(at)"
                if let dir { t += ", \(dir)" }
                if let ms { t += String(format: ", %.0f ms", ms) }
                return Chart.Marker(x: axisTime(r.time), kind: .checkpoint, title: t)
            case .failure(let detail):
                return Chart.Marker(x: axisTime(r.time), kind: .failure, title: "failure (\(r.writer)), \(at): \(detail)")
            case .restart(let attempt):
                return Chart.Marker(x: axisTime(r.time), kind: .restart, title: "restart \(attempt) (\(r.writer)), \(at)")
            default:
                return nil
            }
        }
    }

    private var timeRange: (Double, Double) { (0, axisTime(timeSpan.end)) }

    // MARK: - Series helpers

    /// Distinct colours for up to `legendLimit` lines; red, orange and grey are kept for markers.
    static let palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                          "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd"]

    /// Colours per line, or, beyond `legendLimit` lines, one thin colour and one legend entry
    /// ("each of 64 workers"); long lines are averaged down to `maxPointsPerLine` points.
    private func styled(_ lines: [(name: String, points: [(x: Double, y: Double)], breaks: Set<Int>)], group: String) -> [Chart.Series] {
        let crowded = lines.count > Self.legendLimit
        return lines.enumerated().map { i, line in
            let (points, breaks) = Self.thin(line.points, breaks: line.breaks)
            var s = Chart.Series(name: line.name, color: Self.palette[i % Self.palette.count], points: points, breaks: breaks)
            if crowded {
                s.color = "#6baed6"
                s.width = 0.8
                s.inLegend = i == 0
                if i == 0 { s.name = "each of \(lines.count) \(group)" }
            }
            return s
        }
    }

    /// A time series of writer `name` on the time axis, broken where a new process of it
    /// started (a restart) or where it was silent for much longer than it usually is.
    private func timeSeries(name: String, _ samples: [(t: Double, v: Double)]) -> Chart.Series {
        let limit = Self.staleAfter(samples.map(\.t))
        let points = samples.map { (x: axisTime($0.t), y: $0.v) }
        let breaks = Set(samples.indices.dropFirst().filter { samples[$0].t - samples[$0 - 1].t > limit })
            .union(Self.restartBreaks(samples.map(\.t), starts: startTimes()[name] ?? []))
        let thinned = Self.thin(points, breaks: breaks)
        return Chart.Series(name: name, color: "#333", points: thinned.points, breaks: thinned.breaks)
    }

    /// Times of every writer's `start` records, by writer (`worker 1`).
    func startTimes() -> [String: [Double]] {
        var starts: [String: [Double]] = [:]
        for r in log.records { if case .start = r.event { starts[r.writer, default: []].append(r.time) } }
        return starts
    }

    /// Indices of samples (at `times`, ascending) that follow a `start` after the previous
    /// sample: the first sample of a new process.
    static func restartBreaks(_ times: [Double], starts: [Double]) -> Set<Int> {
        Set(times.indices.dropFirst().filter { j in starts.contains { $0 > times[j - 1] && $0 <= times[j] } })
    }

    /// How long a writer may be silent before its line is broken and its last rate stops
    /// counting towards the total: 5 times its median interval, at least 10 s.
    static func staleAfter(_ times: [Double]) -> Double {
        guard times.count > 1 else { return 10 }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }.sorted()
        return max(10, 5 * gaps[gaps.count / 2])
    }

    /// Averages consecutive points in groups so a line has at most `maxPointsPerLine`;
    /// a group never spans a break.
    static func thin(_ points: [(x: Double, y: Double)], breaks: Set<Int>) -> (points: [(x: Double, y: Double)], breaks: Set<Int>) {
        let group = (points.count + maxPointsPerLine - 1) / maxPointsPerLine
        guard group > 1 else { return (points, breaks) }
        var out: [(x: Double, y: Double)] = [], outBreaks: Set<Int> = []
        var i = 0
        while i < points.count {
            var j = i + 1
            while j < points.count && j - i < group && !breaks.contains(j) { j += 1 }
            if breaks.contains(i) { outBreaks.insert(out.count) }
            let n = Double(j - i)
            out.append((points[i..<j].reduce(0) { $0 + $1.x } / n, points[i..<j].reduce(0) { $0 + $1.y } / n))
            i = j
        }
        return (out, outBreaks)
    }

    /// `count` evenly spaced times over `start...end` (one if the span is empty).
    static func grid(from start: Double, to end: Double, count: Int = 400) -> [Double] {
        guard end > start else { return [start] }
        return (0..<count).map { start + (end - start) * Double($0) / Double(count - 1) }
    }

    /// The cluster's samples/s at each grid time: the sum over workers of each one's rate,
    /// read off its line as drawn (straight between two reports, its last rate after the last
    /// one), counting a worker only while it is reporting: from its first report, not after
    /// its `end`, not when silent for longer than `staleAfter`. NaN where no worker counts.
    static func total(_ byWorker: [Int: [(t: Double, v: Double)]], ends: [Int: [Double]], grid: [Double]) -> [(t: Double, v: Double)] {
        var sums = [Double](repeating: 0, count: grid.count)
        var counted = [Bool](repeating: false, count: grid.count)
        for (rank, samples) in byWorker {
            let stale = staleAfter(samples.map(\.t))
            let endTimes = ends[rank] ?? []
            var k = -1
            for (g, t) in grid.enumerated() {
                while k + 1 < samples.count && samples[k + 1].t <= t { k += 1 }
                guard k >= 0, t - samples[k].t <= stale else { continue }
                if endTimes.contains(where: { $0 >= samples[k].t && $0 < t }) { continue }
                var v = samples[k].v
                if k + 1 < samples.count, samples[k + 1].t - samples[k].t <= stale, samples[k + 1].t > samples[k].t {
                    let f = (t - samples[k].t) / (samples[k + 1].t - samples[k].t)
                    v += f * (samples[k + 1].v - v)
                }
                sums[g] += v
                counted[g] = true
            }
        }
        return grid.indices.map { (grid[$0], counted[$0] ? sums[$0] : .nan) }
    }

    /// Breaks after each run of NaN samples (indices into the finite samples).
    static func gapBreaks(_ samples: [(t: Double, v: Double)]) -> Set<Int> {
        var breaks: Set<Int> = [], kept = 0, gap = false
        for s in samples {
            if s.v.isFinite {
                if gap && kept > 0 { breaks.insert(kept) }
                kept += 1
                gap = false
            } else {
                gap = true
            }
        }
        return breaks
    }

    /// Launcher, coordinator, servers, workers, then anything else: the order of legends and lists.
    static func roleOrder(_ role: String) -> Int {
        ["launcher": 0, "coordinator": 1, "server": 2, "worker": 3][role] ?? 4
    }

    /// Valid before test before other splits.
    static func splitOrder(_ name: String) -> (Int, String) {
        (name.hasPrefix("valid") ? 0 : name.hasPrefix("test") ? 1 : 2, name)
    }
}
