import HeedCore

/// Taobao UserBehavior: headerless CSV `user_id,item_id,category_id,behavior_type,timestamp`
/// with behaviours `pv`, `cart`, `fav`, `buy` and Unix-second timestamps.
enum TaobaoLoader {
    /// Files tried in an `--input` folder, in order.
    static let candidates = ["UserBehavior_first814users.csv.gz", "UserBehavior.csv.gz", "UserBehavior.csv"]
    /// Column names for messages.
    static let columns = "user_id,item_id,category_id,behavior_type,timestamp"

    /// Reads the event file into a dataset (categories from the rows; labels cart/fav/purchase).
    ///
    /// Rows are parsed in one left-to-right pass over the bytes; a row that does not fit
    /// that pass is split again by `diagnose` to report exactly what is wrong.
    static func load(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: candidates,
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        d.hasCategories = true
        let estimate = path.hasSuffix(".gz") ? try FileOps.size(path) / 12 : try FileOps.size(path) / 36
        d.reserveEvents(estimate)
        var splitter = FieldSplitter(delimiter: UInt8(ascii: ","), capacity: 8)
        var lastUserRaw = UInt64.max, lastUser = -1
        try LineReader(path: path).forEachLine(expected: columns) { line, n in
            if line.isEmpty { return true }
            d.rowsRead += 1
            var p = 0
            var row: (UInt64, UInt64, UInt64, EventType, Int64)? = nil
            if let u = digits(line, &p), let i = digits(line, &p), let c = digits(line, &p),
               let e = event(line, &p), let t = digits(line, &p, last: true) {
                row = (u, i, c, e, Int64(bitPattern: t))
            } else {
                row = try diagnose(line, n, path: path, splitter: &splitter, log: &log)
            }
            guard let (u, i, c, e, t) = row else { return true }
            let ii = d.item(i)
            if d.itemCategory[ii] == FeatureGroup.missingRawID { d.itemCategory[ii] = c }
            if u != lastUserRaw { lastUserRaw = u; lastUser = d.user(u) }
            try d.addEvent(user: lastUser, item: ii, type: e, time: t)
            return true
        }
        return d
    }

    /// Parses digits up to the next comma (or the line end when `last`), advancing `p` past the comma.
    @inline(__always)
    private static func digits(_ b: UnsafeBufferPointer<UInt8>, _ p: inout Int, last: Bool = false) -> UInt64? {
        var v: UInt64 = 0
        let s = p
        var i = p
        let n = b.count
        while i < n {
            let d = b[i] &- 48
            if d >= 10 { break }
            v = v &* 10 &+ UInt64(d)
            i += 1
        }
        // Up to 18 digits cannot overflow; longer fields take the diagnosing path.
        guard i > s, i - s <= 18 else { return nil }
        if last {
            guard i == n, v <= UInt64(Int64.max) else { return nil }
        } else {
            guard i < n, b[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
        p = i
        return v
    }

    /// Parses the behaviour field up to the next comma.
    @inline(__always)
    private static func event(_ b: UnsafeBufferPointer<UInt8>, _ p: inout Int) -> EventType? {
        var i = p
        while i < b.count && b[i] != UInt8(ascii: ",") { i += 1 }
        guard i < b.count, let e = EventType.parse(b, p, i) else { return nil }
        p = i + 1
        return e
    }

    /// Parses a row that failed the fast pass field by field: returns it if it is valid after
    /// all (e.g. 19-digit ids, signed timestamps), else reports what is wrong and returns nil.
    private static func diagnose(_ line: UnsafeBufferPointer<UInt8>, _ n: Int, path: String,
                                 splitter f: inout FieldSplitter, log: inout BadRowLog) throws -> (UInt64, UInt64, UInt64, EventType, Int64)? {
        f.split(line)
        guard f.count == 5 else {
            try log.report(.wrongColumnCount, file: path, line: n, "wrong column count: expected 5 fields (\(columns)), found \(f.count)")
            return nil
        }
        var ids: [UInt64] = []
        for (k, name) in ["user_id", "item_id", "category_id"].enumerated() {
            guard let v = ByteParse.uint64(line, f.starts[k], f.ends[k]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric \(name) \(quoteField(line, f.starts[k], f.ends[k])) (expected an integer)")
                return nil
            }
            ids.append(v)
        }
        guard let e = EventType.parse(line, f.starts[3], f.ends[3]) else {
            try log.report(.unknownEventType, file: path, line: n, "unknown behavior_type \(quoteField(line, f.starts[3], f.ends[3])) (expected pv, cart, fav or buy)")
            return nil
        }
        guard let t = ByteParse.int64(line, f.starts[4], f.ends[4]) else {
            try log.report(.nonNumericTimestamp, file: path, line: n, "non-numeric timestamp \(quoteField(line, f.starts[4], f.ends[4])) (expected Unix seconds)")
            return nil
        }
        return (ids[0], ids[1], ids[2], e, t)
    }
}
