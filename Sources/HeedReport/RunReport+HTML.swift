import Foundation

extension RunReport {
    /// The page: a summary, the four plots (or a line saying why one is missing), the epoch
    /// metrics, the events, and notes on what was skipped. Well-formed XML as well as HTML,
    /// with no scripts and no external resources.
    public func html() -> String {
        var body = "<h1>Heed run report</h1>\n<p class=\"run\">\(escape(runDirectory))</p>\n"
        body += summary()
        body += section(id: "loss", title: "Training loss", chart: lossChart(),
                        caption: "Each worker's training loss at each step it reported"
                            + (thinnedNote(role: "worker") ?? "") + ".",
                        empty: "No step records with a loss yet.")
        body += section(id: "auc", title: "AUC per epoch", chart: aucChart(),
                        caption: "Evaluations after each epoch, on the valid and test splits where the run made them.",
                        empty: "No epoch records: this run did not evaluate after an epoch (or has not finished one yet).")
        body += epochTable()
        body += section(id: "throughput", title: "Samples per second", chart: throughputChart(),
                        caption: "Each worker's samples/s as reported with its steps, and their sum: at each time, the rate of every worker "
                            + "still reporting, as its line shows it (a worker silent for 5× its usual interval, or ended, counts no more). "
                            + "Vertical lines: checkpoints, failures and restarts (hover for details).",
                        empty: "No step records with samples/s yet.")
        body += section(id: "memory", title: "Resident memory", chart: memoryChart(),
                        caption: "Resident set size of each process, as each role reported it, with the same event lines.",
                        empty: "No memory records in this log.")
        body += eventsTable()
        body += notes()
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"/>
        <title>Heed run report: \(escape(runDirectory))</title>
        <style>
        body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 940px; padding: 0 12px; }
        h1 { font-size: 22px; margin: 0 0 2px 0; }
        h2 { font-size: 17px; margin: 28px 0 4px 0; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
        p.run { font-family: "DejaVu Sans Mono", monospace; color: #555; margin: 0 0 12px 0; }
        p.caption, p.note { font-size: 13px; color: #555; margin: 2px 0 6px 0; }
        p.empty { font-size: 14px; color: #8a5a00; background: #fff8e6; padding: 8px 10px; border: 1px solid #f0dca8; }
        table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
        th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        th { background: #f5f5f5; }
        svg { display: block; margin: 4px 0; }
        </style></head>
        <body>
        \(body)</body></html>

        """
    }

    private func section(id: String, title: String, chart: Chart?, caption: String, empty: String) -> String {
        var s = "<section id=\"\(id)\"><h2>\(escape(title))</h2>\n"
        if let chart {
            s += "<p class=\"caption\">\(escape(caption))</p>\n" + chart.svg() + "\n"
        } else {
            s += "<p class=\"empty\">\(escape(empty))</p>\n"
        }
        return s + "</section>\n"
    }

    /// ", averaged over N steps per point" when a worker's line was thinned.
    private func thinnedNote(role: String) -> String? {
        let counts = Dictionary(grouping: log.records.filter { r in
            if case .step(_, .some, _, _, _) = r.event { return r.role == role }
            return false
        }, by: \.rank).values.map(\.count)
        guard let most = counts.max(), most > Self.maxPointsPerLine else { return nil }
        return " (averaged over up to \((most + Self.maxPointsPerLine - 1) / Self.maxPointsPerLine) consecutive steps per point)"
    }

    // MARK: - Summary

    private func summary() -> String {
        let records = log.records
        guard let first = records.first, let last = records.last else {
            return "<p class=\"empty\">The metrics log holds no records yet.</p>\n"
        }
        var rows: [(String, String)] = []
        let iso = ISO8601DateFormatter()
        rows.append(("metrics files", "\(log.files.count): " + log.files.joined(separator: ", ")))
        rows.append(("records", "\(records.count)"))
        rows.append(("first record", iso.string(from: Date(timeIntervalSince1970: first.time))))
        rows.append(("last record", "\(Self.duration(last.time - first.time)) later; "
                     + "\(Self.duration(max(0, generatedAt.timeIntervalSince1970 - last.time))) before this report"))
        // Who wrote, and who has not ended.
        var writers: [String: (role: String, rank: Int)] = [:]
        var lastStart: [String: Double] = [:], lastEnd: [String: (Double, Int?)] = [:]
        for r in records {
            writers[r.writer] = (r.role, r.rank)
            if case .start = r.event { lastStart[r.writer] = r.time }
            if case .end(let code) = r.event { lastEnd[r.writer] = (r.time, code) }
        }
        let roleCounts = Dictionary(grouping: writers.values, by: \.role)
            .sorted { Self.roleOrder($0.key) < Self.roleOrder($1.key) }
            .map { "\($0.value.count) \($0.key)\($0.value.count == 1 ? "" : "s")" }
        rows.append(("roles", roleCounts.joined(separator: ", ")))
        let open = writers.keys.filter { w in
            guard let end = lastEnd[w] else { return true }
            return (lastStart[w] ?? -.infinity) > end.0
        }.sorted { (Self.roleOrder(writers[$0]!.role), writers[$0]!.rank) < (Self.roleOrder(writers[$1]!.role), writers[$1]!.rank) }
        if open.isEmpty {
            let failed = lastEnd.filter { ($0.value.1 ?? 0) != 0 }.keys.sorted()
            rows.append(("status", failed.isEmpty ? "ended: every role wrote its end record"
                         : "ended; non-zero exit from " + failed.map { "\($0) (exit \(lastEnd[$0]!.1!))" }.joined(separator: ", ")))
        } else {
            rows.append(("status", "no end record from \(open.joined(separator: ", ")): still running, or stopped before writing it"))
        }
        var counts: [Chart.MarkerKind: Int] = [:]
        for m in markers() { counts[m.kind, default: 0] += 1 }
        rows.append(("events", Chart.MarkerKind.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)\((counts[$0] ?? 0) == 1 ? "" : "s")" }.joined(separator: ", ")))
        if let t = totalThroughput() {
            rows.append(("cluster samples/s", String(format: "%.0f median, %.0f peak (sum over workers, while any reported)", t.median, t.peak)))
        }
        if let best = bestValid() { rows.append(("best valid AUC", best)) }
        var s = "<table class=\"summary\">\n"
        for (k, v) in rows { s += "<tr><th>\(escape(k))</th><td>\(escape(v))</td></tr>\n" }
        s += "</table>\n"
        return s + workerTable()
    }

    private func workerTable() -> String {
        var steps: [Int: (step: Int, loss: Double?, count: Int, rates: [Double])] = [:]
        for r in log.records where r.role == "worker" {
            guard case .step(let step, let loss, let rate, _, _) = r.event else { continue }
            var w = steps[r.rank] ?? (0, nil, 0, [])
            w.step = step
            if let loss { w.loss = loss }
            w.count += 1
            if let rate { w.rates.append(rate) }
            steps[r.rank] = w
        }
        guard !steps.isEmpty else { return "" }
        var s = "<table class=\"workers\">\n<tr><th>worker</th><th>step records</th><th>last step</th><th>last loss</th><th>median samples/s</th></tr>\n"
        for rank in steps.keys.sorted() {
            let w = steps[rank]!
            let rate = w.rates.isEmpty ? "–" : String(format: "%.0f", Self.median(w.rates))
            s += "<tr><td>worker \(rank)</td><td class=\"num\">\(w.count)</td><td class=\"num\">\(w.step)</td>"
            s += "<td class=\"num\">\(w.loss.map { String(format: "%.4f", $0) } ?? "–")</td><td class=\"num\">\(rate)</td></tr>\n"
        }
        return s + "</table>\n"
    }

    /// Median and peak of the total samples/s line, nil without step records.
    func totalThroughput() -> (median: Double, peak: Double)? {
        guard let chart = throughputChart(), let total = chart.series.last, !total.points.isEmpty else { return nil }
        let values = total.points.map(\.y)
        return (Self.median(values), values.max()!)
    }

    private func bestValid() -> String? {
        var valid: [(epoch: Int, auc: Double, writer: String)] = [], test: [String: [Int: Double]] = [:]
        for r in log.records {
            guard case .epoch(let epoch, let split, let auc, _, _) = r.event else { continue }
            if split == "valid" { valid.append((epoch, auc, r.writer)) }
            if split == "test" { test[r.writer, default: [:]][epoch] = auc }
        }
        guard let best = valid.max(by: { $0.auc < $1.auc }) else { return nil }
        var s = String(format: "%.4f at epoch %d", best.auc, best.epoch)
        if let t = test[best.writer]?[best.epoch] { s += String(format: " (test AUC %.4f at that epoch)", t) }
        return s
    }

    // MARK: - Tables

    /// One row per epoch (and evaluator), AUC, GAUC and log loss of each split side by side.
    private func epochTable() -> String {
        var cells: [String: [String: (auc: Double, gauc: Double?, logLoss: Double?)]] = [:]
        var rows: [(epoch: Int, writer: String)] = [], splits: [String] = []
        for r in log.records {
            guard case .epoch(let epoch, let split, let auc, let gauc, let logLoss) = r.event else { continue }
            let key = "\(epoch) \(r.writer)"
            if cells[key] == nil { rows.append((epoch, r.writer)) }
            if !splits.contains(split) { splits.append(split) }
            cells[key, default: [:]][split] = (auc, gauc, logLoss)
        }
        guard !rows.isEmpty else { return "" }
        splits.sort { Self.splitOrder($0) < Self.splitOrder($1) }
        let writers = Set(rows.map(\.writer))
        func num(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "–" }
        var s = "<table class=\"epochs\">\n<tr><th>epoch</th>" + (writers.count > 1 ? "<th>by</th>" : "")
        for split in splits { s += "<th>\(escape(split)) AUC</th><th>\(escape(split)) GAUC</th><th>\(escape(split)) log loss</th>" }
        s += "</tr>\n"
        for row in rows.sorted(by: { ($0.epoch, $0.writer) < ($1.epoch, $1.writer) }) {
            s += "<tr><td class=\"num\">\(row.epoch)</td>" + (writers.count > 1 ? "<td>\(escape(row.writer))</td>" : "")
            for split in splits {
                let c = cells["\(row.epoch) \(row.writer)"]?[split]
                s += "<td class=\"num\">\(num(c?.auc))</td><td class=\"num\">\(num(c?.gauc))</td><td class=\"num\">\(num(c?.logLoss))</td>"
            }
            s += "</tr>\n"
        }
        return s + "</table>\n"
    }

    private func eventsTable() -> String {
        let limit = 200
        let start = timeSpan.start
        let rows = log.records.compactMap { r -> String? in
            let what: String, detail: String
            switch r.event {
            case .checkpoint(let step, let dir, let ms):
                what = "checkpoint"
                detail = "global step \(step)" + (dir.map { ", \($0)" } ?? "") + (ms.map { String(format: ", %.0f ms", $0) } ?? "")
            case .failure(let d): what = "failure"; detail = d
            case .restart(let attempt): what = "restart"; detail = "attempt \(attempt)"
            case .end(let code?) where code != 0: what = "end"; detail = "exit \(code)"
            default: return nil
            }
            return "<tr><td class=\"num\">\(String(format: "%.1f", r.time - start))</td><td>\(escape(r.writer))</td>"
                + "<td>\(what)</td><td>\(escape(detail))</td></tr>\n"
        }
        var s = "<section id=\"events\"><h2>Events</h2>\n"
        if rows.isEmpty { return s + "<p class=\"note\">No checkpoints, failures or restarts.</p>\n</section>\n" }
        s += "<table class=\"events\">\n<tr><th>time (s)</th><th>by</th><th>event</th><th>detail</th></tr>\n"
        s += rows.prefix(limit).joined()
        s += "</table>\n"
        if rows.count > limit { s += "<p class=\"note\">… and \(rows.count - limit) more.</p>\n" }
        return s + "</section>\n"
    }

    private func notes() -> String {
        var lines: [String] = []
        for name in log.truncatedFiles {
            lines.append("\(name): the last line has no newline yet (being written, or cut off); it was skipped.")
        }
        for (name, u) in log.unreadable.sorted(by: { $0.key < $1.key }) {
            lines.append("\(name): \(u.count) unreadable line\(u.count == 1 ? "" : "s") skipped (first: \(u.firstReason)).")
        }
        if log.ignoredLines > 0 {
            lines.append("\(log.ignoredLines) line\(log.ignoredLines == 1 ? "" : "s") of events this report does not draw.")
        }
        guard !lines.isEmpty else { return "" }
        return "<section id=\"notes\"><h2>Notes</h2>\n" + lines.map { "<p class=\"note\">\(escape($0))</p>\n" }.joined() + "</section>\n"
    }

    // MARK: - Formatting

    /// `42.0 s`, `3 min 05 s`, `2 h 07 min`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 120 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        if s < 7200 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    /// The middle value (mean of the two middle ones for an even count); `values` not empty.
    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
