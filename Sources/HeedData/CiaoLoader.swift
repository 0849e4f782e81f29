import HeedCore

/// Ciao: `ratings.tsv` (`user_id item_id category_id rating helpfulness timestamp`) and
/// `trust.tsv` (`truster_id trustee_id`, directed: truster trusts trustee).
enum CiaoLoader {
    /// Reads ratings (label `rating`) and the trust network (slot `neighbors`).
    static func load(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        d.hasCategories = true
        d.hasRatings = true
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain("ratings.tsv"),
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let r = DelimitedReader(path: path, delimiter: 0x09,
                                header: .exact(["user_id", "item_id", "category_id", "rating", "helpfulness", "timestamp"]),
                                describe: "tab-separated user_id, item_id, category_id, rating, helpfulness, timestamp")
        let parsed = try r.read(log: &log) { line, f, n, log in
            guard let u = ByteParse.uint64(line, f.starts[0], f.ends[0]), let i = ByteParse.uint64(line, f.starts[1], f.ends[1]),
                  let c = ByteParse.uint64(line, f.starts[2], f.ends[2]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric id: expected integer user_id, item_id, category_id, found \(quoteField(line, f.starts[0], f.ends[2]))")
                return
            }
            guard let rating = ByteParse.double(line, f.starts[3], f.ends[3]) else {
                try log.report(.badNumber, file: path, line: n, "bad rating \(quoteField(line, f.starts[3], f.ends[3])) (expected a number)")
                return
            }
            guard let t = ByteParse.timestamp(line, f.starts[5], f.ends[5]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "bad timestamp \(quoteField(line, f.starts[5], f.ends[5])) (expected Unix seconds)")
                return
            }
            let ii = d.item(i)
            if d.itemCategory[ii] == FeatureGroup.missingRawID { d.itemCategory[ii] = c }
            try d.addEvent(user: d.user(u), item: ii, type: .rating, time: t, rating: Float(rating))
        }
        d.rowsRead = parsed.rows
        if let trust = try SourceResolver.optional(input: o.input, override: o.social, candidates: SourceResolver.gzOrPlain("trust.tsv")) {
            try d.addSource(role: "social", path: trust)
            d.hasSocial = true
            try readLinks(path: trust, delimiter: 0x09, header: .exact(["truster_id", "trustee_id"]),
                          describe: "tab-separated truster_id, trustee_id", into: &d, log: &log)
        }
        return d
    }

    /// Reads directed `(user, friend)` links into `userNeighbors` (ids via `FeatureGroup.rawID`).
    static func readLinks(path: String, delimiter: UInt8, header: DelimitedReader.Header, describe: String,
                          into d: inout RawDataset, log: inout BadRowLog, userColumn: Int = 0, friendColumn: Int = 1) throws {
        let r = DelimitedReader(path: path, delimiter: delimiter, quoted: delimiter == 0x2C, header: header, describe: describe)
        try r.read(log: &log) { line, f, n, log in
            guard f.ends[userColumn] > f.starts[userColumn], f.ends[friendColumn] > f.starts[friendColumn] else {
                try log.report(.nonNumericID, file: path, line: n, "empty user id in a social link")
                return
            }
            let a = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[userColumn]..<f.ends[userColumn]]))
            let b = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[friendColumn]..<f.ends[friendColumn]]))
            if case .exact = header {
                guard ByteParse.uint64(line, f.starts[userColumn], f.ends[userColumn]) != nil,
                      ByteParse.uint64(line, f.starts[friendColumn], f.ends[friendColumn]) != nil else {
                    try log.report(.nonNumericID, file: path, line: n, "non-numeric user id in \(quoteField(line, 0, line.count)) (expected integers)")
                    return
                }
            }
            let u = d.user(a)
            if a != b { d.addNeighbor(user: u, b) }
        }
    }
}
