import HeedCore

/// Taobao UserBehavior: headerless CSV `user_id,item_id,category_id,behavior_type,timestamp`
/// with behaviours `pv`, `cart`, `fav`, `buy` and Unix-second timestamps.
enum TaobaoLoader {
    /// Files tried in an `--input` folder, in order.
    static let candidates = ["UserBehavior_first814users.csv.gz", "UserBehavior.csv.gz", "UserBehavior.csv"]

    /// Reads the event file into a dataset (categories from the rows; labels cart/fav/purchase).
    static func load(_ o: PrepareOptions, log: inout BadRowLog) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue)
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: candidates,
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        d.hasCategories = true
        let r = DelimitedReader(path: path, delimiter: UInt8(ascii: ","), header: .none, fieldCount: 5,
                                describe: "user_id,item_id,category_id,behavior_type,timestamp")
        try r.read(log: &log) { line, f, n, log in
            d.rowsRead += 1
            guard let u = ByteParse.uint64(line, f.starts[0], f.ends[0]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric user_id \(quoteField(line, f.starts[0], f.ends[0])) (expected an integer)")
                return
            }
            guard let i = ByteParse.uint64(line, f.starts[1], f.ends[1]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric item_id \(quoteField(line, f.starts[1], f.ends[1])) (expected an integer)")
                return
            }
            guard let c = ByteParse.uint64(line, f.starts[2], f.ends[2]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric category_id \(quoteField(line, f.starts[2], f.ends[2])) (expected an integer)")
                return
            }
            guard let e = EventType.parse(line, f.starts[3], f.ends[3]) else {
                try log.report(.unknownEventType, file: path, line: n, "unknown behavior_type \(quoteField(line, f.starts[3], f.ends[3])) (expected pv, cart, fav or buy)")
                return
            }
            guard let t = ByteParse.int64(line, f.starts[4], f.ends[4]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "non-numeric timestamp \(quoteField(line, f.starts[4], f.ends[4])) (expected Unix seconds)")
                return
            }
            let ii = d.item(i)
            if d.itemCategory[ii] == FeatureGroup.missingRawID { d.itemCategory[ii] = c }
            d.addEvent(user: d.user(u), item: ii, type: e, time: t)
        }
        return d
    }
}
